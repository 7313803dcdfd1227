CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE tags (item_id int REFERENCES items (id), tag text);
CREATE INDEX tags_tag ON tags (tag);
