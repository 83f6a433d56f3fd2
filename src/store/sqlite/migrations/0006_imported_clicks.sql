-- Clicks the shortener a link was imported from had counted (snip import); 0 for links made here.
ALTER TABLE links ADD COLUMN imported_clicks INTEGER NOT NULL DEFAULT 0;
