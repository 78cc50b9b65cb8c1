"""Real servers for monarch's tests, demos and benchmarks.

Each launcher returns a handle with the server's address and a ``stop()`` method, and works as a
context manager. Nothing here imports pytest, so scripts can start the same servers.

- :func:`start_mongo`: a MongoDB-wire server (an external URI, a throwaway ``mongod``, or FerretDB).
- :func:`start_postgres`: a PostgreSQL server (an external URI or a throwaway cluster).
- :func:`start_s3`: an S3 endpoint (an external one, moto's server in process, or SeaweedFS);
  :class:`S3Servers` starts one of each kind on demand.
- :func:`mongo_tools`: paths of ``mongodump``/``mongorestore`` and their sample archives.
"""

from tests.servers.mongo import MongoServer, start_mongo
from tests.servers.mongotools import MongoTools, mongo_tools
from tests.servers.postgres import PostgresServer, start_postgres
from tests.servers.process import ServerStartError
from tests.servers.s3 import S3Bucket, S3Server, S3Servers, start_s3

__all__ = [
    "MongoServer",
    "MongoTools",
    "PostgresServer",
    "S3Bucket",
    "S3Server",
    "S3Servers",
    "ServerStartError",
    "mongo_tools",
    "start_mongo",
    "start_postgres",
    "start_s3",
]
