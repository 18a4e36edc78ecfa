-- Each object is one JSON document in `data`; the other columns exist to be filtered, ordered
-- or constrained on. `seq` orders lists: creation seconds alone would tie.
CREATE TABLE assistants (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    data BYTEA NOT NULL
);
CREATE INDEX assistants_by_project ON assistants (project_id, seq);

CREATE TABLE threads (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    data BYTEA NOT NULL
);

CREATE TABLE messages (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    run_id TEXT,
    created_at BIGINT NOT NULL,
    data BYTEA NOT NULL
);
CREATE INDEX messages_by_thread ON messages (thread_id, seq);

CREATE TABLE runs (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    lease_owner TEXT,
    lease_expires_at BIGINT NOT NULL DEFAULT 0,
    attempt BIGINT NOT NULL DEFAULT 0,
    data BYTEA NOT NULL
);
CREATE INDEX runs_by_thread ON runs (thread_id, seq);
-- OpenAI allows one active run per thread; the database enforces it so that no race between
-- two writers (or two replicas) can break it.
CREATE UNIQUE INDEX runs_one_active_per_thread ON runs (thread_id)
    WHERE status IN ('queued', 'in_progress', 'requires_action', 'cancelling');
CREATE INDEX runs_by_work ON runs (status, lease_expires_at);

CREATE TABLE run_steps (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    data BYTEA NOT NULL
);
CREATE INDEX run_steps_by_run ON run_steps (run_id, seq);
CREATE INDEX run_steps_by_thread ON run_steps (thread_id);

CREATE TABLE run_events (
    run_id TEXT NOT NULL,
    sequence_number BIGINT NOT NULL,
    event TEXT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (run_id, sequence_number)
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
