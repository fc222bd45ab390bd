"""What one night's refresh costs on AWS, from what its chunks measured.

Each chunk records the CPU and wall seconds it took (integration, parsing, its S3 reads and
writes); the function that completes the refresh adds them up and prices them with the list
prices below (us-east-1, arm64 Lambda as the template deploys it, DynamoDB on demand). The
refresh is single-threaded and CPU-bound, so a worker is given one full vCPU (1,769 MB) and
its billed duration is about its wall time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["PRICES_USD", "RefreshCost", "refresh_cost"]

#: List prices (USD, us-east-1, 2025): Lambda arm64 per GB-s and per request; SQS per
#: request; S3 Standard per PUT and GET; DynamoDB on demand per write and read request unit.
PRICES_USD = {"lambda_gb_s": 0.0000133334, "lambda_request": 0.20e-6, "sqs_request": 0.40e-6,
              "s3_put": 0.005e-3, "s3_get": 0.0004e-3, "dynamodb_wru": 0.625e-6,
              "dynamodb_rru": 0.125e-6}
#: DynamoDB bills a write per 1 KB and a strongly consistent read per 4 KB of an item.
_WRITE_UNIT_BYTES, _READ_UNIT_BYTES = 1024, 4096


@dataclass(frozen=True)
class RefreshCost:
    """Resources and money of one night's refresh.

    Attributes
    ----------
    cpu_seconds, wall_seconds : float
        Summed over the chunks (the planner's and the fan-in's few seconds are not included).
    lambda_gb_seconds : float
        Wall seconds × the worker's memory (GB).
    invocations, sqs_requests, s3_requests : int
        Worker invocations (one per chunk plus the planner), SQS requests (send, receive and
        delete of each chunk message), S3 requests (each chunk's input written and read, its
        output written and read once more by the fan-in, the report).
    dynamodb_request_units : int
        Write units of the night's catalog plus read units of the base catalog by the planner
        (upper bounds: both are stored compressed).
    lambda_usd, requests_usd, total_usd : float
        Priced with :data:`PRICES_USD`.
    """

    cpu_seconds: float
    wall_seconds: float
    lambda_gb_seconds: float
    invocations: int
    sqs_requests: int
    s3_requests: int
    dynamodb_request_units: int
    lambda_usd: float
    requests_usd: float
    total_usd: float

    def as_dict(self) -> dict[str, float | int]:
        """JSON-ready."""
        return asdict(self)


def refresh_cost(*, chunks: int, cpu_seconds: float, wall_seconds: float, memory_mb: int,
                 night_bytes: int, base_bytes: int = 0) -> RefreshCost:
    """Price one night's refresh (see :class:`RefreshCost` for what is counted).

    Parameters
    ----------
    chunks : int
        Chunk messages (one worker invocation each).
    cpu_seconds, wall_seconds : float
        Measured by the chunks, summed.
    memory_mb : int
        The worker's memory size.
    night_bytes, base_bytes : int
        Size of the night's stored catalog, and of the base catalog the planner read.
    """
    gb_s = wall_seconds * memory_mb / 1024.0
    invocations = chunks + 1
    sqs = 3 * chunks
    s3_puts, s3_gets = 2 * chunks + 1, 2 * chunks + 1
    wru = -(-int(night_bytes) // _WRITE_UNIT_BYTES)
    rru = -(-int(base_bytes) // _READ_UNIT_BYTES)
    p = PRICES_USD
    lambda_usd = gb_s * p["lambda_gb_s"] + invocations * p["lambda_request"]
    requests_usd = (sqs * p["sqs_request"] + s3_puts * p["s3_put"] + s3_gets * p["s3_get"]
                    + wru * p["dynamodb_wru"] + rru * p["dynamodb_rru"])
    return RefreshCost(cpu_seconds=float(cpu_seconds), wall_seconds=float(wall_seconds),
                       lambda_gb_seconds=gb_s, invocations=invocations, sqs_requests=sqs,
                       s3_requests=s3_puts + s3_gets, dynamodb_request_units=wru + rru,
                       lambda_usd=lambda_usd, requests_usd=requests_usd,
                       total_usd=lambda_usd + requests_usd)
