"""boto3 adapters: the only modules that import boto3. Each adapter takes an injected client."""
