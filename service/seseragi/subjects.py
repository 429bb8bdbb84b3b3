"""The caller names that are no verified subject, which every layer keying work by caller needs.

Their own module because the API decides who calls (api/identity.py), the job store caps each
caller's queued jobs, and the edge refuses tokens naming them: none of those may import another.
"""

ANONYMOUS = "anonymous"  # whoever calls without a subject the edge proved
RESERVED_SUBJECTS = frozenset({ANONYMOUS, ""})  # the edge refuses tokens with these as `sub`
