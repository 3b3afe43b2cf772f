"""Accounts: users, passwords and tokens; single sign-on; the sign-in throttles."""
