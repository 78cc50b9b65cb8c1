-- monarch:transactional=false
CREATE INDEX CONCURRENTLY users_note ON users (note);
VACUUM users;
-- monarch:rollback
DROP INDEX CONCURRENTLY users_note;
