CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);
CREATE TRIGGER users_audit AFTER INSERT ON users
BEGIN
    INSERT INTO audit (what) VALUES ('insert; of ' || new.email);
END;
BEGIN;
COMMIT;
ROLLBACK TO sp;
