"""Read an inventory as it is at a git ref, without touching the checkout.

``git archive <ref> -- <path>`` streams the tree of one commit; it is unpacked into a
temporary folder (with tarfile's "data" filter: no absolute paths, no escaping links).
The only module that runs git.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

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
