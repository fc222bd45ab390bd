"""The Level 1 database (APDB) on DynamoDB: DiaObject versions, DiaSource, DiaForcedSource, SSObject."""
