ENVIRONMENTS = {
    'development': {
        'host': 'localhost:27017',
        'db_name': 'legacy_app_dev',
    },
    'production': {
        'host': 'db1.example.com:27017,db2.example.com:27017',
        'db_name': 'legacy_app',
        'username': 'app',
        'password': 'p@ss:w/rd',
        'sslCAFile': '/etc/ssl/ca.pem',
    },
}

BACKUPS = {
    'LOCAL': {
        'backup_dir': 'backups',
    },
}
