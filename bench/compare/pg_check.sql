-- Membership: is user :u in segment :seg (and not expired)?
\set u random(0, :users - 1)
SELECT EXISTS (
  SELECT 1 FROM users u JOIN users_segments us ON us.user_id = u.id
  WHERE u.external_id = lpad(:u::text, 12, '0') AND us.segment_id = :seg
    AND (us.end_date IS NULL OR us.end_date > now()));
