-- Members of segment :seg that have not expired.
SELECT count(*) FROM users_segments
WHERE segment_id = :seg AND (end_date IS NULL OR end_date > now());
