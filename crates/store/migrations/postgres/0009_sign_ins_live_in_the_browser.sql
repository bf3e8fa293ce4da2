-- A portal sign-in in progress now lives in the browser that started it
-- (an HttpOnly cookie), so starting one writes nothing to the store and
-- nobody can fill the database by asking to sign in.
DROP TABLE portal_logins;
