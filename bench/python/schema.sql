-- Loaded once into the template database by postgresql_proc(load=[...]); every test's clean
-- database is created from that template.
CREATE TABLE items (
    id serial PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE tags (
    item_id int REFERENCES items (id),
    tag text
);

CREATE INDEX tags_tag_idx ON tags (tag);
