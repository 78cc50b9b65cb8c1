package main

// A minimal BSON reader and writer: enough to read commands and to write replies and
// generated documents. Values read are kept as raw bytes with their type, so a document can be
// stored, compared and written back without a full decoder.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
)

// Elem is one element of a document: its type byte, name and raw value bytes.
type Elem struct {
	Type byte
	Name string
	Raw  []byte
}

// Doc is a parsed document, in order.
type Doc []Elem

var errBSON = errors.New("malformed BSON")

func cstring(b []byte) (string, int, error) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", 0, errBSON
	}
	return string(b[:i]), i + 1, nil
}

// valueSize is the size of a value of type t at the start of b.
func valueSize(t byte, b []byte) (int, error) {
	need := func(n int) (int, error) {
		if n > len(b) || n < 0 {
			return 0, errBSON
		}
		return n, nil
	}
	le32 := func() int {
		if len(b) < 4 {
			return -1
		}
		return int(int32(binary.LittleEndian.Uint32(b)))
	}
	switch t {
	case 0x01, 0x09, 0x11, 0x12: // double, datetime, timestamp, int64
		return need(8)
	case 0x02, 0x0D, 0x0E: // string, code, symbol
		return need(4 + le32())
	case 0x03, 0x04: // document, array
		return need(le32())
	case 0x05: // binary
		return need(5 + le32())
	case 0x06, 0x0A, 0x7F, 0xFF: // undefined, null, max, min
		return 0, nil
	case 0x07:
		return need(12)
	case 0x08:
		return need(1)
	case 0x0B: // regex: two cstrings
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return 0, errBSON
		}
		j := bytes.IndexByte(b[i+1:], 0)
		if j < 0 {
			return 0, errBSON
		}
		return i + j + 2, nil
	case 0x0C: // dbpointer
		return need(4 + le32() + 12)
	case 0x0F: // code with scope
		return need(le32())
	case 0x10:
		return need(4)
	case 0x13:
		return need(16)
	}
	return 0, errBSON
}

func parseDoc(b []byte) (Doc, error) {
	if len(b) < 5 {
		return nil, errBSON
	}
	size := int(binary.LittleEndian.Uint32(b))
	if size > len(b) || size < 5 {
		return nil, errBSON
	}
	b = b[4 : size-1]
	var d Doc
	for len(b) > 0 {
		t := b[0]
		name, n, err := cstring(b[1:])
		if err != nil {
			return nil, err
		}
		b = b[1+n:]
		vs, err := valueSize(t, b)
		if err != nil {
			return nil, err
		}
		d = append(d, Elem{t, name, b[:vs]})
		b = b[vs:]
	}
	return d, nil
}

func (d Doc) Get(name string) (Elem, bool) {
	for _, e := range d {
		if e.Name == name {
			return e, true
		}
	}
	return Elem{}, false
}

func (e Elem) Int() (int64, bool) {
	switch e.Type {
	case 0x10:
		return int64(int32(binary.LittleEndian.Uint32(e.Raw))), true
	case 0x12:
		return int64(binary.LittleEndian.Uint64(e.Raw)), true
	case 0x01:
		return int64(math.Float64frombits(binary.LittleEndian.Uint64(e.Raw))), true
	}
	return 0, false
}

func (e Elem) Float() (float64, bool) {
	if e.Type == 0x01 {
		return math.Float64frombits(binary.LittleEndian.Uint64(e.Raw)), true
	}
	i, ok := e.Int()
	return float64(i), ok
}

func (e Elem) Str() string {
	if e.Type != 0x02 || len(e.Raw) < 5 {
		return ""
	}
	return string(e.Raw[4 : len(e.Raw)-1])
}

func (e Elem) Doc() Doc {
	if e.Type != 0x03 && e.Type != 0x04 {
		return nil
	}
	d, _ := parseDoc(e.Raw)
	return d
}

func (e Elem) Truthy() bool {
	switch e.Type {
	case 0x08:
		return e.Raw[0] == 1
	case 0x00, 0x0A, 0x06:
		return false
	}
	if f, ok := e.Float(); ok {
		return f != 0
	}
	return true
}

// Builder writes BSON into a growing buffer.
type Builder struct{ B []byte }

func (w *Builder) Start() int {
	at := len(w.B)
	w.B = append(w.B, 0, 0, 0, 0)
	return at
}

func (w *Builder) End(at int) {
	w.B = append(w.B, 0)
	binary.LittleEndian.PutUint32(w.B[at:], uint32(len(w.B)-at))
}

func (w *Builder) key(t byte, name string) {
	w.B = append(w.B, t)
	w.B = append(w.B, name...)
	w.B = append(w.B, 0)
}

func (w *Builder) Str(name, v string) {
	w.key(0x02, name)
	w.B = binary.LittleEndian.AppendUint32(w.B, uint32(len(v)+1))
	w.B = append(w.B, v...)
	w.B = append(w.B, 0)
}

func (w *Builder) Int32(name string, v int32) {
	w.key(0x10, name)
	w.B = binary.LittleEndian.AppendUint32(w.B, uint32(v))
}

func (w *Builder) Int64(name string, v int64) {
	w.key(0x12, name)
	w.B = binary.LittleEndian.AppendUint64(w.B, uint64(v))
}

func (w *Builder) Double(name string, v float64) {
	w.key(0x01, name)
	w.B = binary.LittleEndian.AppendUint64(w.B, math.Float64bits(v))
}

func (w *Builder) Date(name string, ms int64) {
	w.key(0x09, name)
	w.B = binary.LittleEndian.AppendUint64(w.B, uint64(ms))
}

func (w *Builder) Bool(name string, v bool) {
	w.key(0x08, name)
	if v {
		w.B = append(w.B, 1)
	} else {
		w.B = append(w.B, 0)
	}
}

func (w *Builder) Null(name string) { w.key(0x0A, name) }

// Raw writes an element of any type from its raw value bytes.
func (w *Builder) Raw(t byte, name string, raw []byte) {
	w.key(t, name)
	w.B = append(w.B, raw...)
}

func (w *Builder) Elem(e Elem) { w.Raw(e.Type, e.Name, e.Raw) }

func (w *Builder) SubDoc(name string) int {
	w.key(0x03, name)
	return w.Start()
}

func (w *Builder) SubArray(name string) int {
	w.key(0x04, name)
	return w.Start()
}

func index(i int) string { return strconv.Itoa(i) }

// encodeDoc writes the elements of d as a new document.
func encodeDoc(d Doc) []byte {
	var w Builder
	at := w.Start()
	for _, e := range d {
		w.Elem(e)
	}
	w.End(at)
	return w.B
}
