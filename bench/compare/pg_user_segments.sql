-- A user's segments, with when each membership started and ends, sorted by name.
\set u random(0, :users - 1)
SELECT s.name, us.start_date, us.end_date
FROM users u
JOIN users_segments us ON us.user_id = u.id
JOIN segments s ON s.id = us.segment_id
WHERE u.external_id = lpad(:u::text, 12, '0')
  AND (us.end_date IS NULL OR us.end_date > now())
ORDER BY s.name;
