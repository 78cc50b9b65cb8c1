ENVIRONMENTS = {
    'dev': {'host': 'localhost', 'port': 27017, 'db_name': 'app'},
}

BACKUPS = {
    'S3': {
        'bucket_name': 'legacy-backups',
        'aws_access_key_id': 'AKIAEXAMPLE',
        'aws_secret_access_key': 'c2VjcmV0',
    },
}
