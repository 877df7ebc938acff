-- Users in both :seg and :seg2.
SELECT count(*)
FROM users_segments a JOIN users_segments b ON b.user_id = a.user_id
WHERE a.segment_id = :seg AND b.segment_id = :seg2
  AND (a.end_date IS NULL OR a.end_date > now())
  AND (b.end_date IS NULL OR b.end_date > now());
