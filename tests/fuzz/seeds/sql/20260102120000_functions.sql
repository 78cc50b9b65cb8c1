CREATE FUNCTION add_one(x integer) RETURNS integer LANGUAGE plpgsql AS $body$
BEGIN
    RETURN x + 1; -- a semicolon inside the body
END;
$body$;
CREATE OR REPLACE FUNCTION twice(x integer) RETURNS integer LANGUAGE sql
BEGIN ATOMIC
    SELECT x * 2;
END;
CREATE TABLE "odd;name" (v text);
SELECT $$dollar ; quoted$$, (SELECT 1; );
-- monarch:rollback
DROP FUNCTION twice(integer);
DROP FUNCTION add_one(integer);
DROP TABLE "odd;name";
