#!/usr/bin/env python3
"""CDK entry point: ``cdk synth`` / ``cdk deploy`` run this (see cdk.json)."""

from infra.app_builder import main

if __name__ == "__main__":
    main()
