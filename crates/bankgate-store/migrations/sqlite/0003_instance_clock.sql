-- A sandbox instance's clock can be moved ahead of real time. Stored here, not
-- in a process, so every node sharing the database reads the same time.
ALTER TABLE instances ADD COLUMN clock_offset_micros INTEGER NOT NULL DEFAULT 0
    CHECK (clock_offset_micros >= 0);
