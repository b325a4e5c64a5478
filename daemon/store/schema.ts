// The SQLite store's schema, versioned by `PRAGMA user_version`. A store is
// migrated on open by running, in one transaction, every migration above its
// version. A new version is one more entry at the end of MIGRATIONS; an entry
// is never edited once released (stores in the field already ran it).

/** Each entry takes the schema from version i to i + 1. */
export const MIGRATIONS: readonly string[] = [
  // v1
  `
  CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE retained (
    subject TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    payload BLOB NOT NULL,
    enc TEXT,
    owner INTEGER
  ) WITHOUT ROWID;
  CREATE TABLE subjects (
    subject TEXT PRIMARY KEY,
    n INTEGER NOT NULL,
    dropped BLOB NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE messages (
    seq INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    n INTEGER NOT NULL,
    time INTEGER NOT NULL,
    payload BLOB NOT NULL,
    enc TEXT
  );
  `,
];

/** The schema version this build writes and reads. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Keys of the meta table. */
export const META = {
  /** The highest sequence number the broker may have issued (StoreSnapshot.sequenceReservation). */
  sequenceReservation: "sequence_reservation",
  /** When the store was created, Unix ms. */
  createdTime: "created_time",
  /** The sequence floor the store began at. */
  createdSeq: "created_seq",
} as const;
