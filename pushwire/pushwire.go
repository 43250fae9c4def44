// Package pushwire reads an encoded push.v1.PushRequest (the body of a
// Pyroscope Push call, as the store keeps it) without decoding it into
// messages: the labels of each series, and whether every profile inside is
// gzipped already. It walks the protobuf wire format and copies nothing but
// label strings, so looking at a stored request costs little next to
// sending it.
//
// Field numbers are those of push.proto: PushRequest.series = 1;
// RawProfileSeries.labels = 1, samples = 2; LabelPair.name = 1, value = 2;
// RawSample.raw_profile = 1. Other fields, and known fields with a wire
// type other than length-delimited, are skipped as protobuf skips unknown
// fields.
//
// Duplicate label names: when a series names a label twice, the first
// value wins, as in package route's SeriesLabels, which routes decoded
// requests. The Pyroscope server refuses such a series, and so does the
// relay's Push endpoint, so stored requests have none; the rule only
// matters for exports written elsewhere or by hand, and one rule means
// --app selects a request by the labels it was routed by.
package pushwire

import (
	"bytes"
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrMalformed is returned for a request whose protobuf framing is broken.
var ErrMalformed = errors.New("push does not decode")

// errStop ends a walk early; it never leaves the package.
var errStop = errors.New("stop")

// EachSeries calls fn with the labels of each series of the encoded
// request b, in order, until fn returns false. A label named twice keeps
// its first value. It returns ErrMalformed if the framing is broken before
// fn asks to stop.
func EachSeries(b []byte, fn func(labels map[string]string) bool) error {
	err := eachField(b, 1, func(series []byte) error {
		labels := map[string]string{}
		err := eachField(series, 1, func(pair []byte) error {
			name, value, err := labelPair(pair)
			if err != nil {
				return err
			}
			if _, dup := labels[name]; !dup {
				labels[name] = value
			}
			return nil
		})
		if err != nil {
			return err
		}
		if !fn(labels) {
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// labelPair reads a LabelPair. Within one pair a field that occurs twice
// keeps its last value, as protobuf decoding does.
func labelPair(b []byte) (name, value string, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", "", ErrMalformed
		}
		b = b[n:]
		if typ != protowire.BytesType || (num != 1 && num != 2) {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return "", "", ErrMalformed
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return "", "", ErrMalformed
		}
		b = b[n:]
		if num == 1 {
			name = string(v)
		} else {
			value = string(v)
		}
	}
	return name, value, nil
}

// gzipMagic starts every gzip stream.
var gzipMagic = []byte{0x1f, 0x8b}

// ProfilesCompressed reports whether every raw_profile in the encoded
// request b starts with the gzip magic, without copying the profiles. A
// request with no profile counts as not compressed.
func ProfilesCompressed(b []byte) (bool, error) {
	seen := false
	all := true
	err := eachField(b, 1, func(series []byte) error {
		return eachField(series, 2, func(sample []byte) error {
			return eachField(sample, 1, func(profile []byte) error {
				seen = true
				all = all && bytes.HasPrefix(profile, gzipMagic)
				return nil
			})
		})
	})
	if err != nil {
		return false, err
	}
	return seen && all, nil
}

// eachField calls fn with the value of every length-delimited field num of
// the message b, skipping the other fields, and stops at fn's first error.
func eachField(b []byte, num protowire.Number, fn func([]byte) error) error {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return ErrMalformed
		}
		b = b[l:]
		if n == num && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return ErrMalformed
			}
			if err := fn(v); err != nil {
				return err
			}
			b = b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, b)
		if l < 0 {
			return ErrMalformed
		}
		b = b[l:]
	}
	return nil
}
