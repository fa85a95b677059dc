-- The demo accounting package: one SQLite file per dossier.
--
-- Like many on-premise packages, it does not enforce unique keys (legacy
-- schema): the connector must cope with duplicate ids. Every tracked change
-- takes the next value of meta.change_counter and stores it in the row's
-- `rv` (row version); a booking's lines carry no rv of their own: any change
-- of a line bumps its booking. Deletions are written to deletion_log with the
-- counter value of the deletion as `seq`. Amounts are integer cents.
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- keys: code, name, enterprise_number, language, email, change_counter,
--       deletion_log_from (first seq the log is complete from), active_period

CREATE TABLE accounts (code TEXT NOT NULL, name TEXT NOT NULL, rv INTEGER NOT NULL);
CREATE TABLE journals (code TEXT NOT NULL, name TEXT NOT NULL,
    kind TEXT NOT NULL,            -- purchase | sales | financial | misc
    rv INTEGER NOT NULL);
CREATE TABLE fiscal_years (id INTEGER NOT NULL, code TEXT NOT NULL,
    start_date TEXT NOT NULL, end_date TEXT NOT NULL,
    closed INTEGER NOT NULL, rv INTEGER NOT NULL);
CREATE TABLE periods (id INTEGER NOT NULL, fiscal_year_id INTEGER NOT NULL,
    code TEXT NOT NULL,            -- YYYY-MM
    start_date TEXT NOT NULL, end_date TEXT NOT NULL,
    closed INTEGER NOT NULL, rv INTEGER NOT NULL);
CREATE TABLE relations (id INTEGER NOT NULL,
    kind TEXT NOT NULL,            -- customer | supplier
    name TEXT NOT NULL, vat_number TEXT, email TEXT, language TEXT,
    rv INTEGER NOT NULL);
CREATE TABLE bookings (id INTEGER NOT NULL, journal TEXT NOT NULL,
    doc_no TEXT NOT NULL,
    doc_type TEXT NOT NULL,        -- invoice | credit_note | statement | misc
    fiscal_year_id INTEGER NOT NULL, period_id INTEGER NOT NULL,
    date TEXT NOT NULL,            -- YYYY-MM-DD (not checked by the package)
    due_date TEXT, relation_id INTEGER, description TEXT,
    reference TEXT,                -- worklist proposal reference, if any
    rv INTEGER NOT NULL);
CREATE TABLE booking_lines (booking_id INTEGER NOT NULL, line_no INTEGER NOT NULL,
    account TEXT NOT NULL, relation_id INTEGER, description TEXT,
    debit INTEGER NOT NULL DEFAULT 0, credit INTEGER NOT NULL DEFAULT 0,
    vat_code TEXT);
CREATE TABLE matchings (id INTEGER NOT NULL, invoice_id INTEGER NOT NULL,
    payment_id INTEGER NOT NULL, amount INTEGER NOT NULL, rv INTEGER NOT NULL);
CREATE TABLE deletion_log (seq INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,          -- bookings | matchings | relations | accounts
    key TEXT NOT NULL, deleted_at TEXT NOT NULL);
-- The package's history: one row per commit that moved the change counter,
-- `id` chained from the one before with a fresh nonce. A copy of the file put
-- back from a backup, however far it moves on since, never again holds the
-- ids its lost commits had: the package's own identity of a point in time.
CREATE TABLE history (counter INTEGER PRIMARY KEY, id TEXT NOT NULL);
CREATE TABLE proposals (ref TEXT PRIMARY KEY, journal TEXT NOT NULL,
    date TEXT NOT NULL, relation_id INTEGER, amount INTEGER NOT NULL,
    lines TEXT NOT NULL,           -- JSON list of {account, debit, credit, vat_code}
    status TEXT NOT NULL,          -- received | booked
    booking_id INTEGER, received_at TEXT NOT NULL);

CREATE INDEX accounts_code ON accounts(code);
CREATE INDEX accounts_rv ON accounts(rv);
CREATE INDEX journals_rv ON journals(rv);
CREATE INDEX fiscal_years_rv ON fiscal_years(rv);
CREATE INDEX periods_rv ON periods(rv);
CREATE INDEX relations_id ON relations(id);
CREATE INDEX relations_rv ON relations(rv);
CREATE INDEX bookings_id ON bookings(id);
CREATE INDEX bookings_rv ON bookings(rv);
CREATE INDEX bookings_period ON bookings(period_id);
CREATE INDEX booking_lines_booking ON booking_lines(booking_id, line_no);
CREATE INDEX matchings_id ON matchings(id);
CREATE INDEX matchings_rv ON matchings(rv);
CREATE INDEX matchings_invoice ON matchings(invoice_id);
