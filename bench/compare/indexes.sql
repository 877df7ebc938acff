-- Keys and indexes after the bulk load. (segment_id, user_id) serves membership checks, counts
-- and intersections; user_id serves "which segments is this user in"; external_id maps the ids
-- that requests carry to internal ones.
ALTER TABLE users ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX users_external_id ON users (external_id);
ALTER TABLE segments ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX segments_name ON segments (name);
ALTER TABLE users_segments ADD PRIMARY KEY (segment_id, user_id);
CREATE INDEX users_segments_user_id ON users_segments (user_id);
VACUUM ANALYZE;
