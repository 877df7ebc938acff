-- Add user :u to segment :wseg (again: the membership starts anew), one transaction.
\set u random(0, :users - 1)
INSERT INTO users_segments (segment_id, user_id, start_date, end_date)
SELECT :wseg, id, now(), NULL FROM users WHERE external_id = lpad(:u::text, 12, '0')
ON CONFLICT (segment_id, user_id) DO UPDATE SET start_date = excluded.start_date, end_date = NULL;
