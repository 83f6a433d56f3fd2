-- Clicks the shortener a link was imported from had counted (snip import); 0 for links made here.
ALTER TABLE links ADD COLUMN IF NOT EXISTS imported_clicks BIGINT NOT NULL DEFAULT 0;
