-- Admin takedowns: a link taken down is disabled, with the operator's reason (NULL otherwise).
ALTER TABLE links ADD COLUMN IF NOT EXISTS takedown_reason TEXT;
