package store

// What Salvage read goes into the new store here, list by list, in
// transactions of salvageBatch entries.

import (
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// put writes a batch of one list into the new store.
func (sv *salvager) put(ctx context.Context, src Source, batch []salvaged) error {
	assigned := map[uint64]uint64{}
	err := sv.dst.write(ctx, nil, func(tx *bolt.Tx) error {
		clear(assigned)
		entries, refs := tx.Bucket(bucketEntries), tx.Bucket(bucketRefs)
		for _, it := range batch {
			id, known := sv.ids[it.srcID]
			if !known {
				id, known = assigned[it.srcID]
			}
			if !known {
				var err error
				if id, err = entries.NextSequence(); err != nil {
					return err
				}
				if err := sv.dst.log.putRecord(tx, entries, id, it.rec); err != nil {
					return err
				}
				assigned[it.srcID] = id
			}
			size := uint64(len(it.rec))
			if src.Kind == SourceArchive {
				if refs.Get(u64(id)) != nil {
					continue // queued again: the queue holds it
				}
				ab, err := tx.CreateBucketIfNotExists(bucketArchive)
				if err != nil {
					return err
				}
				if err := ab.Put(archiveKey(it.at, id), u64(size)); err != nil {
					return err
				}
				if err := addStats(tx, keyArchive, 1, int64(size)); err != nil {
					return err
				}
				continue
			}
			n := uint32(0)
			if v := refs.Get(u64(id)); len(v) == 4 {
				n = binary.BigEndian.Uint32(v)
			} else if err := addStats(tx, keyTotal, 1, int64(size)); err != nil {
				return err
			}
			if err := refs.Put(u64(id), u32(n+1)); err != nil {
				return err
			}
			if it.dead != nil {
				if err := sv.putDead(tx, src.Queue, id, size, *it.dead); err != nil {
					return err
				}
				continue
			}
			if err := appendQueue(tx, src.Queue, queueRef{id: id, size: size, receivedAt: it.at}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", src, err)
	}
	for k, v := range assigned {
		sv.ids[k] = v
	}
	return nil
}

func (sv *salvager) putDead(tx *bolt.Tx, queue string, id, size uint64, d DeadLetter) error {
	dl, err := tx.Bucket(bucketDead).CreateBucketIfNotExists([]byte(queue))
	if err != nil {
		return err
	}
	seq, err := dl.NextSequence()
	if err != nil {
		return err
	}
	d.EntryID = id
	v, err := d.encode(size)
	if err != nil {
		return err
	}
	if err := dl.Put(u64(seq), v); err != nil {
		return err
	}
	return addStats(tx, statsKey('d', queue), 1, int64(size))
}
