-- The schema a PostgreSQL segmentation service keeps: users with their external ids, segments,
-- and one row per membership with the time it started and the time it ends (NULL: no TTL).
-- Keys and indexes are added by indexes.sql after the bulk COPY, as a bulk loader would.
CREATE TABLE users (
  id          bigint NOT NULL,
  external_id text   NOT NULL
);
CREATE TABLE segments (
  id   integer NOT NULL,
  name text    NOT NULL
);
CREATE TABLE users_segments (
  segment_id integer     NOT NULL,
  user_id    bigint      NOT NULL,
  start_date timestamptz NOT NULL DEFAULT now(),
  end_date   timestamptz
);
