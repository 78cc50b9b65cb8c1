package main

// The generated dataset: deterministic documents made on demand from their number, so a
// collection of any size costs no memory and serving it costs little CPU.

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Shape says how documents look and how many collections share the data.
type Shape struct {
	Name        string
	Payload     int // bytes of text per document
	Collections int
}

var shapes = map[string]Shape{
	"small": {"small", 120, 4},      // about 250 B per document
	"large": {"large", 32 << 10, 4}, // about 32 KiB per document
	"many":  {"many", 120, 200},     // small documents over many collections
	"huge":  {"huge", 120, 1},       // one collection holds everything
}

// GenColl is one generated collection: documents with _id 0..Count-1.
type GenColl struct {
	Name    string
	Count   int64
	Payload int
	DocSize int
}

var words = []string{
	"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
	"juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
	"sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "order",
	"customer", "invoice", "shipped", "pending", "paid", "refund", "warehouse", "berlin",
	"paris", "lisbon", "oslo", "tokyo", "lima", "quito", "cairo", "nairobi", "delhi",
}

// text is a fixed pool of word-like text that payloads are cut from: compressible the way
// prose is, not trivially (every document starts at a different place).
var text = func() []byte {
	var out []byte
	state := uint64(0x9E3779B97F4A7C15)
	for len(out) < 1<<20 {
		state ^= state << 13
		state ^= state >> 7
		state ^= state << 17
		out = append(out, words[state%uint64(len(words))]...)
		if state%11 == 0 {
			out = append(out, fmt.Sprintf(" %d", state%100000)...)
		}
		out = append(out, ' ')
	}
	return out
}()

// AppendDoc appends document number i of the collection to b.
func (c *GenColl) AppendDoc(b []byte, i int64) []byte {
	w := Builder{b}
	at := w.Start()
	w.Int64("_id", i)
	w.Int32("n", int32(i%1000))
	w.Str("name", fmt.Sprintf("item-%d", i))
	w.Double("value", float64(i)*0.5)
	w.Date("created", 1700000000000+i*1000)
	tags := w.SubArray("tags")
	w.Str("0", words[i%int64(len(words))])
	w.Str("1", words[(i/7)%int64(len(words))])
	w.End(tags)
	sub := w.SubDoc("address")
	w.Str("city", words[(i/3)%int64(len(words))])
	w.Int32("zip", int32(10000+i%90000))
	w.End(sub)
	off := int((i * 7919) % int64(len(text)-c.Payload))
	w.key(0x02, "payload")
	w.B = binary.LittleEndian.AppendUint32(w.B, uint32(c.Payload+1))
	w.B = append(w.B, text[off:off+c.Payload]...)
	w.B = append(w.B, 0)
	w.End(at)
	return w.B
}

// AppendIDDoc appends {_id: i}, for finds that project only _id.
func AppendIDDoc(b []byte, i int64) []byte {
	w := Builder{b}
	at := w.Start()
	w.Int64("_id", i)
	w.End(at)
	return w.B
}

// makeDataset splits totalBytes of documents of the shape over its collections.
func makeDataset(shape Shape, totalBytes int64, collections int) []*GenColl {
	if collections <= 0 {
		collections = shape.Collections
	}
	probe := &GenColl{Payload: shape.Payload}
	size := len(probe.AppendDoc(nil, 100000)) // a typical length of the name
	perColl := int64(math.Ceil(float64(totalBytes) / float64(size) / float64(collections)))
	out := make([]*GenColl, collections)
	for k := range out {
		out[k] = &GenColl{Name: fmt.Sprintf("%s_%03d", shape.Name, k), Count: perColl,
			Payload: shape.Payload, DocSize: size}
	}
	return out
}
