package main

// Commands. The generated collections are read-only; any other collection is "stored": its
// first documents are kept (enough for the small bookkeeping collections tools write), every
// insert is counted, and the rest are discarded.

import (
	"log"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const keepDocs = 1000

type stored struct {
	docs    []Doc
	count   int64
	indexes []Doc
	options []byte
}

type cursor struct {
	ns     string
	gen    *GenColl
	next   int64
	end    int64
	idOnly bool
	desc   bool
	docs   [][]byte
}

type server struct {
	genDB string
	gen   map[string]*GenColl
	order []string

	mu       sync.Mutex
	stored   map[string]*stored // by namespace
	cursors  map[int64]*cursor
	nextID   atomic.Int64
	Inserted atomic.Int64
}

func newServer(db string, colls []*GenColl) *server {
	s := &server{genDB: db, gen: map[string]*GenColl{}, stored: map[string]*stored{},
		cursors: map[int64]*cursor{}}
	for _, c := range colls {
		s.gen[c.Name] = c
		s.order = append(s.order, c.Name)
	}
	return s
}

type cmdError struct {
	code int32
	name string
	msg  string
}

func (s *server) handle(req *request, w *Builder, conn int32) {
	at := w.Start()
	if len(req.cmd) == 0 {
		writeError(w, cmdError{59, "CommandNotFound", "empty command"})
		w.End(at)
		return
	}
	name := req.cmd[0].Name
	db := "admin"
	if e, ok := req.cmd.Get("$db"); ok {
		db = e.Str()
	}
	if verbose {
		log.Printf("conn %d: %s.%s %s", conn, db, name, req.cmd[0].Str())
	}
	if err := s.command(strings.ToLower(name), db, req, w, conn); err != nil {
		if err.code == 59 && name != "atlasVersion" {
			log.Printf("unknown command %q on %s: %v", name, db, req.cmd)
		}
		w.B = w.B[:at+4]
		writeError(w, *err)
	}
	w.End(at)
}

func writeError(w *Builder, e cmdError) {
	w.Double("ok", 0)
	w.Str("errmsg", e.msg)
	w.Int32("code", e.code)
	w.Str("codeName", e.name)
}

func notFound(name string) *cmdError {
	return &cmdError{59, "CommandNotFound", "no such command: '" + name + "'"}
}

func (s *server) command(name, db string, req *request, w *Builder, conn int32) *cmdError {
	cmd := req.cmd
	arg := cmd[0]
	switch name {
	case "hello", "ismaster":
		w.Bool("ismaster", true)
		w.Bool("isWritablePrimary", true)
		w.Bool("helloOk", true)
		w.Int32("maxBsonObjectSize", 16<<20)
		w.Int32("maxMessageSizeBytes", 48000000)
		w.Int32("maxWriteBatchSize", 100000)
		w.Date("localTime", time.Now().UnixMilli())
		w.Int32("logicalSessionTimeoutMinutes", 30)
		w.Int32("connectionId", conn)
		w.Int32("minWireVersion", 0)
		w.Int32("maxWireVersion", 17)
		w.Bool("readOnly", false)
		if offersZlib(cmd) {
			arr := w.SubArray("compression")
			w.Str("0", "zlib")
			w.End(arr)
		}
	case "buildinfo":
		w.Str("version", "6.0.0")
		arr := w.SubArray("versionArray")
		for i, v := range []int32{6, 0, 0, 0} {
			w.Int32(index(i), v)
		}
		w.End(arr)
		w.Str("gitVersion", "wire-benchmark-server")
		w.Int32("bits", 64)
		w.Int32("maxBsonObjectSize", 16<<20)
	case "ping", "endsessions", "saslstart", "logout", "setparameter", "configurefailpoint",
		"refreshsessions", "abortTransaction", "committransaction":
	case "getparameter":
		sub := w.SubDoc("featureCompatibilityVersion")
		w.Str("version", "6.0")
		w.End(sub)
	case "getcmdlineopts":
		arr := w.SubArray("argv")
		w.End(arr)
		sub := w.SubDoc("parsed")
		w.End(sub)
	case "serverstatus":
		w.Str("host", "wire")
		w.Str("version", "6.0.0")
		w.Str("process", "mongod")
	case "hostinfo":
	case "listdatabases":
		s.listDatabases(w)
	case "listcollections":
		s.listCollections(db, cmd, w)
	case "listindexes":
		return s.listIndexes(db+"."+arg.Str(), w)
	case "count":
		w.Int64("n", s.count(db+"."+arg.Str()))
	case "collstats", "datasize":
		ns := db + "." + arg.Str()
		n := s.count(ns)
		size := n * s.docSize(ns)
		w.Str("ns", ns)
		w.Int64("count", n)
		w.Int64("size", size)
		w.Int64("storageSize", size)
		w.Int64("avgObjSize", s.docSize(ns))
		w.Int32("nindexes", 1)
		w.Int64("totalIndexSize", 0)
	case "dbstats":
		var objects, size int64
		for _, c := range s.collections(db) {
			n := s.count(db + "." + c)
			objects += n
			size += n * s.docSize(db+"."+c)
		}
		w.Str("db", db)
		w.Int64("collections", int64(len(s.collections(db))))
		w.Int64("objects", objects)
		w.Int64("dataSize", size)
		w.Int64("storageSize", size)
	case "find":
		return s.find(db, cmd, w)
	case "aggregate":
		return s.aggregate(db, cmd, w)
	case "getmore":
		id, _ := arg.Int()
		coll, _ := cmd.Get("collection")
		return s.getMore(id, db+"."+coll.Str(), batchSize(cmd), w)
	case "killcursors":
		s.mu.Lock()
		arr := w.SubArray("cursorsKilled")
		if e, ok := cmd.Get("cursors"); ok {
			for i, c := range e.Doc() {
				id, _ := c.Int()
				delete(s.cursors, id)
				w.Int64(index(i), id)
			}
		}
		w.End(arr)
		s.mu.Unlock()
	case "insert":
		return s.insert(db+"."+arg.Str(), cmd, req, w)
	case "update":
		return s.update(db+"."+arg.Str(), cmd, req, w)
	case "delete":
		return s.delete(db+"."+arg.Str(), cmd, req, w)
	case "findandmodify":
		return s.findAndModify(db+"."+arg.Str(), cmd, w)
	case "create":
		s.mu.Lock()
		st := s.ensure(db + "." + arg.Str())
		opts := Doc{}
		for _, e := range cmd[1:] {
			if !strings.HasPrefix(e.Name, "$") && e.Name != "lsid" && e.Name != "writeConcern" {
				opts = append(opts, e)
			}
		}
		st.options = encodeDoc(opts)
		s.mu.Unlock()
	case "createindexes":
		s.mu.Lock()
		st := s.ensure(db + "." + arg.Str())
		if e, ok := cmd.Get("indexes"); ok {
			for _, ix := range e.Doc() {
				st.indexes = append(st.indexes, ix.Doc())
			}
		}
		s.mu.Unlock()
		w.Int32("numIndexesBefore", 1)
		w.Int32("numIndexesAfter", 2)
	case "dropindexes", "deleteindexes":
	case "drop":
		s.mu.Lock()
		delete(s.stored, db+"."+arg.Str())
		s.mu.Unlock()
	case "dropdatabase":
		s.mu.Lock()
		for ns := range s.stored {
			if strings.HasPrefix(ns, db+".") {
				delete(s.stored, ns)
			}
		}
		s.mu.Unlock()
	case "renamecollection":
		to, _ := cmd.Get("to")
		from := arg.Str()
		s.mu.Lock()
		defer s.mu.Unlock()
		st, ok := s.stored[from]
		if !ok {
			return &cmdError{26, "NamespaceNotFound", "source namespace does not exist"}
		}
		if _, exists := s.stored[to.Str()]; exists {
			if dt, ok := cmd.Get("dropTarget"); !ok || !dt.Truthy() {
				return &cmdError{48, "NamespaceExists", "target namespace exists"}
			}
		}
		delete(s.stored, from)
		s.stored[to.Str()] = st
	default:
		return notFound(cmd[0].Name)
	}
	w.Double("ok", 1)
	return nil
}

// offersZlib tells whether a hello lists zlib among the compressors the client can use.
func offersZlib(cmd Doc) bool {
	if e, ok := cmd.Get("compression"); ok && e.Type == 0x04 {
		for _, c := range e.Doc() {
			if c.Type == 0x02 && c.Str() == "zlib" {
				return true
			}
		}
	}
	return false
}

func batchSize(cmd Doc) int64 {
	if e, ok := cmd.Get("batchSize"); ok {
		if n, ok := e.Int(); ok && n > 0 {
			return n
		}
	}
	return 0
}

// collections lists the names in db: generated ones (in the dataset's database) and stored.
func (s *server) collections(db string) []string {
	var out []string
	if db == s.genDB {
		out = append(out, s.order...)
	}
	s.mu.Lock()
	for ns := range s.stored {
		if strings.HasPrefix(ns, db+".") {
			out = append(out, ns[len(db)+1:])
		}
	}
	s.mu.Unlock()
	sort.Strings(out)
	return out
}

func (s *server) genFor(ns string) *GenColl {
	if !strings.HasPrefix(ns, s.genDB+".") {
		return nil
	}
	return s.gen[ns[len(s.genDB)+1:]]
}

func (s *server) count(ns string) int64 {
	if g := s.genFor(ns); g != nil {
		return g.Count
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.stored[ns]; ok {
		return st.count
	}
	return 0
}

func (s *server) docSize(ns string) int64 {
	if g := s.genFor(ns); g != nil {
		return int64(g.DocSize)
	}
	return 256
}

func (s *server) ensure(ns string) *stored {
	st, ok := s.stored[ns]
	if !ok {
		st = &stored{options: encodeDoc(nil)}
		s.stored[ns] = st
	}
	return st
}

func (s *server) listDatabases(w *Builder) {
	names := map[string]bool{s.genDB: true}
	s.mu.Lock()
	for ns := range s.stored {
		names[ns[:strings.IndexByte(ns, '.')]] = true
	}
	s.mu.Unlock()
	var sorted []string
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	arr := w.SubArray("databases")
	for i, n := range sorted {
		d := w.SubDoc(index(i))
		w.Str("name", n)
		w.Int64("sizeOnDisk", 0)
		w.Bool("empty", false)
		w.End(d)
	}
	w.End(arr)
	w.Int64("totalSize", 0)
}

func (s *server) listCollections(db string, cmd Doc, w *Builder) {
	var only string
	nameOnly := false
	if f, ok := cmd.Get("filter"); ok {
		if n, ok := f.Doc().Get("name"); ok {
			only = n.Str()
		}
	}
	if e, ok := cmd.Get("nameOnly"); ok {
		nameOnly = e.Truthy()
	}
	cur := w.SubDoc("cursor")
	w.Int64("id", 0)
	w.Str("ns", db+".$cmd.listCollections")
	arr := w.SubArray("firstBatch")
	i := 0
	for _, name := range s.collections(db) {
		if only != "" && name != only {
			continue
		}
		d := w.SubDoc(index(i))
		i++
		w.Str("name", name)
		w.Str("type", "collection")
		if !nameOnly {
			opts := encodeDoc(nil)
			s.mu.Lock()
			if st, ok := s.stored[db+"."+name]; ok {
				opts = st.options
			}
			s.mu.Unlock()
			w.Raw(0x03, "options", opts)
			info := w.SubDoc("info")
			w.Bool("readOnly", false)
			w.End(info)
			idx := w.SubDoc("idIndex")
			w.Int32("v", 2)
			k := w.SubDoc("key")
			w.Int32("_id", 1)
			w.End(k)
			w.Str("name", "_id_")
			w.End(idx)
		}
		w.End(d)
	}
	w.End(arr)
	w.End(cur)
}

func (s *server) listIndexes(ns string, w *Builder) *cmdError {
	var extra []Doc
	if g := s.genFor(ns); g != nil {
		extra = []Doc{nil} // one secondary index on n
	} else {
		s.mu.Lock()
		st, ok := s.stored[ns]
		if ok {
			extra = append(extra, st.indexes...)
		}
		s.mu.Unlock()
		if !ok {
			return &cmdError{26, "NamespaceNotFound", "ns does not exist: " + ns}
		}
	}
	cur := w.SubDoc("cursor")
	w.Int64("id", 0)
	w.Str("ns", ns)
	arr := w.SubArray("firstBatch")
	d := w.SubDoc("0")
	w.Int32("v", 2)
	k := w.SubDoc("key")
	w.Int32("_id", 1)
	w.End(k)
	w.Str("name", "_id_")
	w.End(d)
	for i, ix := range extra {
		if ix == nil {
			d := w.SubDoc(index(i + 1))
			w.Int32("v", 2)
			k := w.SubDoc("key")
			w.Int32("n", 1)
			w.End(k)
			w.Str("name", "n_1")
			w.End(d)
			continue
		}
		w.Raw(0x03, index(i+1), encodeDoc(ix))
	}
	w.End(arr)
	w.End(cur)
	w.Double("ok", 1)
	return nil
}
