package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// A record bigger than half a bbolt page sits alone in a bucket of its
// own, under the entries bucket (schema 2); smaller ones are plain values.
// Kept as plain values side by side, as schema 1 kept every record, big
// records shared bbolt leaves: bbolt never splits a leaf of four keys or
// fewer, so a Put rewrote the records already in the last leaf, and an Ack
// that freed an entry rewrote the records beside it (BENCHMARKS.md has what
// that cost). A bucket of one record is written once, when it is created, and
// its pages are freed with it; the entries bucket holds 16-byte headers.
// Small records share leaves as before: a bucket each would take a page
// each.
//
// Schema 1 records are read and deleted as they are, so a data dir keeps
// working across the upgrade with no migration.

// recordKey is the key of the record inside an entry's bucket.
var recordKey = []byte{'r'}

// recordLeafOverhead is what precedes a big record in its bucket's leaf:
// bbolt's page header (16 bytes), the leaf element (16) and recordKey.
const recordLeafOverhead = 16 + 16 + 1

// getRecord returns entry id's record, or nil if there is none. The bytes
// are bbolt's: valid only during the transaction.
func getRecord(entries *bolt.Bucket, id uint64) []byte {
	k := u64(id)
	// Bucket first: profiles are mostly big records.
	if b := entries.Bucket(k); b != nil {
		return b.Get(recordKey)
	}
	return entries.Get(k)
}

// putRecord stores rec as entry id, which must be new.
func putRecord(entries *bolt.Bucket, id uint64, rec []byte) error {
	k := u64(id)
	if len(rec) <= entries.Tx().DB().Info().PageSize/2 {
		if err := entries.Put(k, rec); err != nil {
			return fmt.Errorf("put entry %d: %w", id, err)
		}
		return nil
	}
	b, err := entries.CreateBucket(k)
	if err == nil {
		err = b.Put(recordKey, rec)
	}
	if err != nil {
		return fmt.Errorf("put entry %d: %w", id, err)
	}
	return nil
}

// deleteRecord removes entry id; removing one that is not there is not
// an error.
func deleteRecord(entries *bolt.Bucket, id uint64) error {
	k := u64(id)
	if entries.Bucket(k) != nil {
		return entries.DeleteBucket(k)
	}
	return entries.Delete(k)
}
