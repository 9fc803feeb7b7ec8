"""Read an inventory as it is at a git ref, without touching the checkout.

``git archive <ref> -- <path>`` streams the tree of one commit; it is unpacked into a
temporary folder. Every member is checked first: files and folders under the exported path,
and symbolic links only when they resolve inside it (a link to ``/proc/self/environ`` or to
``../../.git/config`` is a one-line input error, never followed); then tarfile's "data"
filter unpacks. The only module that runs git.
"""

from __future__ import annotations

import io
import posixpath
import subprocess
import tarfile
from pathlib import Path, PurePosixPath

from reconciler.errors import InputError, Problem


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, check=False, timeout=120
        )
    except FileNotFoundError:
        raise InputError(Problem("git is not installed; review needs it")) from None


def repo_root(start: Path) -> Path:
    """The top of the git work tree that holds ``start``."""
    folder = start if start.is_dir() else start.parent
    done = _git(["rev-parse", "--show-toplevel"], folder.resolve() if folder.exists() else Path())
    if done.returncode != 0:
        raise InputError(Problem(f"'{start}' is not inside a git repository", field="--base"))
    return Path(done.stdout.decode().strip())


def resolve(ref: str, root: Path, option: str) -> str:
    """The commit a ref names (a clear error when it names none)."""
    done = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root)
    if done.returncode != 0:
        raise InputError(Problem(f"'{ref}' is not a commit in {root}", field=option))
    return done.stdout.decode().strip()


def export(commit: str, root: Path, subpath: str, dest: Path) -> bool:
    """Unpack ``subpath`` as it is at ``commit`` under ``dest``; False when it is absent."""
    listed = _git(["ls-tree", "-d", "--name-only", commit, "--", subpath], root)
    if listed.returncode != 0 or not listed.stdout.strip():
        return False
    done = _git(["archive", "--format=tar", commit, "--", subpath], root)
    if done.returncode != 0:
        raise InputError(
            Problem(f"git archive of {subpath} at {commit[:12]} failed: {done.stderr.decode()}")
        )
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        problems = [
            Problem(f"{message} (at {commit[:12]}); refused", member.name)
            for member in archive.getmembers()
            if (message := _member_problem(member, subpath))
        ]
        if problems:
            raise InputError(problems)
        if hasattr(tarfile, "data_filter"):
            archive.extractall(dest, filter="data")
        else:  # Python before 3.10.12 / 3.11.4: check by hand, files and folders only
            for member in archive.getmembers():
                name = Path(member.name)
                if (
                    name.is_absolute()
                    or ".." in name.parts
                    or not (member.isfile() or member.isdir())
                ):
                    raise InputError(Problem(f"refusing to unpack {member.name} from git"))
            archive.extractall(dest)
    return True


def _member_problem(member: tarfile.TarInfo, subpath: str) -> str | None:
    """Why an archive member may not be unpacked, or None: it must be a file, a folder or a
    symbolic link whose target stays inside ``subpath`` (git archive makes no others)."""
    name = PurePosixPath(member.name)
    top = PurePosixPath(posixpath.normpath(subpath))
    if name.is_absolute() or ".." in name.parts:
        return "an absolute path or one with '..'"
    if member.isfile() or member.isdir():
        return None
    if not member.issym():
        return "not a file, folder or symbolic link"
    target = member.linkname
    if posixpath.isabs(target):
        return f"a symbolic link to the absolute path {target}"
    resolved = PurePosixPath(
        posixpath.normpath(posixpath.join(posixpath.dirname(member.name), target))
    )
    inside = str(top) == "." or resolved == top or top in resolved.parents
    if ".." in resolved.parts or not inside:
        return f"a symbolic link to {target}, which leads outside {subpath}"
    return None
