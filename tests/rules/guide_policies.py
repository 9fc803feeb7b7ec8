"""The key policies of the guide's "Real-World Key Policy Examples" (guides/003), verbatim.

Their account is ``GUIDE_ACCOUNT`` (not the harness's ``ACCOUNT``): review them with
``GUIDE_CONTEXT``, whose admin principals are the guide's administrators and which trusts
no other account. 987654321098 and 111122223333 are other accounts there.
"""

from __future__ import annotations

from typing import Any

from reconciler.review import Context
from tests.rules.harness import ORG, context

GUIDE_ACCOUNT = "123456789012"
GUIDE_ADMINS = (
    f"arn:aws:iam::{GUIDE_ACCOUNT}:user/admin1",
    f"arn:aws:iam::{GUIDE_ACCOUNT}:role/AdminRole",
)
GUIDE_CONTEXT: Context = context(
    account_id=GUIDE_ACCOUNT,
    trusted_accounts=frozenset(),
    organization_ids=frozenset({ORG}),
    admin_principals=GUIDE_ADMINS,
)

# Example 1: Application-Specific Key Policy (admin role and user, application roles, CloudTrail)
APPLICATION: dict[str, Any] = {
    "Version": "2012-10-17",
    "Id": "application-key-policy",
    "Statement": [
        {
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "Allow application role to use the key",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    "arn:aws:iam::123456789012:role/WebApplicationRole",
                    "arn:aws:iam::123456789012:role/BackgroundJobRole",
                ]
            },
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey",
            ],
            "Resource": "*",
        },
        {
            "Sid": "Allow administrators to manage the key",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    "arn:aws:iam::123456789012:user/admin1",
                    "arn:aws:iam::123456789012:role/AdminRole",
                ]
            },
            "Action": [
                "kms:Create*",
                "kms:Describe*",
                "kms:Enable*",
                "kms:List*",
                "kms:Put*",
                "kms:Update*",
                "kms:Revoke*",
                "kms:Disable*",
                "kms:Get*",
                "kms:Delete*",
                "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion",
            ],
            "Resource": "*",
        },
        {
            "Sid": "Allow CloudTrail to describe key",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": ["kms:DescribeKey", "kms:GetKeyPolicy"],
            "Resource": "*",
        },
    ],
}

# Example 2: Cross-Account Access Policy (kms:ViaService, encryption context)
CROSS_ACCOUNT: dict[str, Any] = {
    "Version": "2012-10-17",
    "Id": "cross-account-key-policy",
    "Statement": [
        {
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "Allow cross-account access",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    "arn:aws:iam::987654321098:root",
                    "arn:aws:iam::111122223333:role/CrossAccountRole",
                ]
            },
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey",
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": ["s3.us-east-1.amazonaws.com", "s3.us-west-2.amazonaws.com"]
                }
            },
        },
        {
            "Sid": "Restrict to specific encryption context",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::987654321098:role/DataProcessingRole"},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:EncryptionContext:Department": "Finance",
                    "kms:EncryptionContext:Project": "DataAnalytics",
                }
            },
        },
    ],
}

# Example 3: Time-Based Access Policy (business hours; emergency role with MFA)
TIME_BASED: dict[str, Any] = {
    "Version": "2012-10-17",
    "Id": "time-based-key-policy",
    "Statement": [
        {
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "Allow access during business hours only",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:role/BusinessHoursRole"},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {
                "DateGreaterThan": {"aws:CurrentTime": "08:00Z"},
                "DateLessThan": {"aws:CurrentTime": "18:00Z"},
                "ForAllValues:StringEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2"]},
            },
        },
        {
            "Sid": "Emergency access outside business hours",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:role/EmergencyRole"},
            "Action": ["kms:Decrypt", "kms:DescribeKey"],
            "Resource": "*",
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        },
    ],
}
