"""Generated from protos/seseragi/v1 by `make proto`. Do not edit."""
