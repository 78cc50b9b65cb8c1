// Command wire is a benchmark-only MongoDB-wire server that costs (almost) nothing: it serves
// a generated dataset from memory and accepts writes, counting them. Reading from it measures
// the client alone. It is not a database: see the README beside this file.
package main

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync/atomic"
)

const (
	opReply      = 1
	opQuery      = 2004
	opCompressed = 2012
	opMsg        = 2013

	zlibCompressor = 2 // the compressor id of zlib in OP_COMPRESSED

	maxBatchBytes = 16 << 20
)

var (
	requestIDs atomic.Int32
	connIDs    atomic.Int32
	verbose    bool
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "address to listen on")
	db := flag.String("db", "bench", "database holding the generated dataset")
	shapeName := flag.String("shape", "small", "small, large, many or huge")
	gb := flag.Float64("gb", 0.01, "size of the generated dataset in GB of BSON")
	mb := flag.Float64("mb", 0, "size in MB (overrides --gb)")
	colls := flag.Int("collections", 0, "number of collections (default: the shape's)")
	flag.BoolVar(&verbose, "verbose", false, "log every command")
	flag.Parse()

	shape, ok := shapes[*shapeName]
	if !ok {
		log.Fatalf("unknown shape %q", *shapeName)
	}
	total := int64(*gb * 1e9)
	if *mb > 0 {
		total = int64(*mb * 1e6)
	}
	srv := newServer(*db, makeDataset(shape, total, *colls))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	for {
		conn, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go srv.serve(conn)
	}
}

// request is one decoded message: the command document plus any kind-1 sequences.
type request struct {
	id        int32
	op        int32
	cmd       Doc
	sequences map[string][][]byte
	noReply   bool
}

func readMessage(r *bufio.Reader, buf []byte) (*request, []byte, error) {
	var header [16]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return nil, buf, err
	}
	length := int(binary.LittleEndian.Uint32(header[0:]))
	if length < 16 || length > 64<<20 {
		return nil, buf, fmt.Errorf("bad message length %d", length)
	}
	if cap(buf) < length-16 {
		buf = make([]byte, length-16)
	}
	body := buf[:length-16]
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, buf, err
	}
	req := &request{
		id: int32(binary.LittleEndian.Uint32(header[4:])),
		op: int32(binary.LittleEndian.Uint32(header[12:])),
	}
	if req.op == opCompressed {
		var err error
		if req.op, body, err = decompress(body); err != nil {
			return nil, buf, err
		}
	}
	switch req.op {
	case opMsg:
		flags := binary.LittleEndian.Uint32(body)
		req.noReply = flags&2 != 0
		rest := body[4:]
		if flags&1 != 0 {
			rest = rest[:len(rest)-4] // checksum
		}
		for len(rest) > 0 {
			kind := rest[0]
			rest = rest[1:]
			size := int(binary.LittleEndian.Uint32(rest))
			if kind == 0 {
				// Copy: the buffer is reused for the next message.
				d, err := parseDoc(append([]byte(nil), rest[:size]...))
				if err != nil {
					return nil, buf, err
				}
				req.cmd = d
			} else {
				section := rest[4:size]
				name, n, err := cstring(section)
				if err != nil {
					return nil, buf, err
				}
				section = section[n:]
				if req.sequences == nil {
					req.sequences = map[string][][]byte{}
				}
				for len(section) > 0 {
					ds := int(binary.LittleEndian.Uint32(section))
					req.sequences[name] = append(req.sequences[name], append([]byte(nil), section[:ds]...))
					section = section[ds:]
				}
			}
			rest = rest[size:]
		}
	case opQuery:
		rest := body[4:]
		ns, n, err := cstring(rest)
		if err != nil {
			return nil, buf, err
		}
		rest = rest[n+8:]
		d, err := parseDoc(append([]byte(nil), rest...))
		if err != nil {
			return nil, buf, err
		}
		if q, ok := d.Get("$query"); ok {
			d = q.Doc()
		}
		if q, ok := d.Get("query"); ok && len(d) > 0 && d[0].Name == "query" {
			d = q.Doc()
		}
		// A legacy command names its database in the namespace ("admin.$cmd").
		db := ns
		for i := range ns {
			if ns[i] == '.' {
				db = ns[:i]
				break
			}
		}
		d = append(d, Elem{0x02, "$db", strElem(db)})
		req.cmd = d
	default:
		return nil, buf, fmt.Errorf("unsupported opcode %d", req.op)
	}
	return req, buf, nil
}

// decompress opens an OP_COMPRESSED body (original opcode, uncompressed size, compressor id,
// then the compressed original body): the original opcode and body. Only zlib is offered.
func decompress(body []byte) (int32, []byte, error) {
	if len(body) < 9 {
		return 0, nil, fmt.Errorf("short compressed message")
	}
	op := int32(binary.LittleEndian.Uint32(body))
	size := int(binary.LittleEndian.Uint32(body[4:]))
	if body[8] != zlibCompressor {
		return 0, nil, fmt.Errorf("unsupported compressor %d", body[8])
	}
	if size < 0 || size > 64<<20 {
		return 0, nil, fmt.Errorf("bad uncompressed size %d", size)
	}
	zr, err := zlib.NewReader(bytes.NewReader(body[9:]))
	if err != nil {
		return 0, nil, err
	}
	defer zr.Close()
	out := make([]byte, size)
	if _, err := io.ReadFull(zr, out); err != nil {
		return 0, nil, fmt.Errorf("compressed message: %w", err)
	}
	return op, out, nil
}

func strElem(s string) []byte {
	var w Builder
	w.Str("x", s)
	return w.B[3:]
}

func (s *server) serve(conn net.Conn) {
	defer conn.Close()
	id := connIDs.Add(1)
	r := bufio.NewReaderSize(conn, 1<<20)
	wr := bufio.NewWriterSize(conn, 1<<20)
	var buf []byte
	out := make([]byte, 0, 1<<20)
	for {
		req, b, err := readMessage(r, buf)
		buf = b
		if err != nil {
			if err != io.EOF && verbose {
				log.Printf("conn %d: %v", id, err)
			}
			return
		}
		out = out[:0]
		out = append(out, make([]byte, 16)...)
		if req.op == opQuery {
			out = binary.LittleEndian.AppendUint32(out, 0) // response flags
			out = binary.LittleEndian.AppendUint64(out, 0) // cursor id
			out = binary.LittleEndian.AppendUint32(out, 0) // starting from
			out = binary.LittleEndian.AppendUint32(out, 1) // number returned
		} else {
			out = binary.LittleEndian.AppendUint32(out, 0) // flags
			out = append(out, 0)                           // kind 0: the body
		}
		w := Builder{out}
		s.handle(req, &w, id)
		out = w.B
		if req.noReply {
			continue
		}
		op := int32(opMsg)
		if req.op == opQuery {
			op = opReply
		}
		binary.LittleEndian.PutUint32(out[0:], uint32(len(out)))
		binary.LittleEndian.PutUint32(out[4:], uint32(requestIDs.Add(1)))
		binary.LittleEndian.PutUint32(out[8:], uint32(req.id))
		binary.LittleEndian.PutUint32(out[12:], uint32(op))
		if _, err := wr.Write(out); err != nil {
			return
		}
		if err := wr.Flush(); err != nil {
			return
		}
		if cap(out) > 64<<20 {
			out = make([]byte, 0, 1<<20)
		}
	}
}
