CREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL, note text DEFAULT 'it''s; fine');
CREATE UNIQUE INDEX users_email ON users (email);
/* a block comment; with /* a nested one; */ still comment */
INSERT INTO users (id, email) VALUES (1, 'a@example.com'), (2, E'b\'; @example.com');

-- monarch:rollback
DROP TABLE users;
