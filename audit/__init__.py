"""The stage's audit trail: a CloudTrail trail over its account-region and its data buckets."""
