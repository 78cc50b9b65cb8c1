package main

// Reads and writes: finds over generated collections (by _id range) and over stored ones
// (a small filter language: equality, $in, $nin, $ne, $lt/$lte/$gt/$gte, $exists, $and, $or).

import (
	"bytes"
	"encoding/binary"
	"log"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

type idRange struct{ lo, hi int64 } // [lo, hi)

func rangeOf(filter Doc, g *GenColl) (idRange, bool) {
	r := idRange{0, g.Count}
	for _, e := range filter {
		if e.Name != "_id" {
			log.Printf("filter on generated collection ignores %q", e.Name)
			continue
		}
		if e.Type != 0x03 {
			v, ok := e.Int()
			if !ok {
				return r, false
			}
			r = idRange{max(r.lo, v), min(r.hi, v+1)}
			continue
		}
		for _, op := range e.Doc() {
			v, ok := op.Int()
			if !ok {
				return r, false
			}
			switch op.Name {
			case "$gte":
				r.lo = max(r.lo, v)
			case "$gt":
				r.lo = max(r.lo, v+1)
			case "$lt":
				r.hi = min(r.hi, v)
			case "$lte":
				r.hi = min(r.hi, v+1)
			default:
				log.Printf("filter operator %s on _id ignored", op.Name)
			}
		}
	}
	if r.hi < r.lo {
		r.hi = r.lo
	}
	return r, true
}

func idOnly(projection Doc) bool {
	if len(projection) != 1 || projection[0].Name != "_id" {
		return false
	}
	return projection[0].Truthy()
}

func (s *server) find(db string, cmd Doc, w *Builder) *cmdError {
	ns := db + "." + cmd[0].Str()
	var filter, projection, sortSpec Doc
	if e, ok := cmd.Get("filter"); ok {
		filter = e.Doc()
	}
	if e, ok := cmd.Get("projection"); ok {
		projection = e.Doc()
	}
	if e, ok := cmd.Get("sort"); ok {
		sortSpec = e.Doc()
	}
	var skip, limit int64
	if e, ok := cmd.Get("skip"); ok {
		skip, _ = e.Int()
	}
	if e, ok := cmd.Get("limit"); ok {
		limit, _ = e.Int()
		if limit < 0 {
			limit = -limit
		}
	}
	single := false
	if e, ok := cmd.Get("singleBatch"); ok {
		single = e.Truthy()
	}
	c := &cursor{ns: ns}
	if g := s.genFor(ns); g != nil {
		r, ok := rangeOf(filter, g)
		if !ok {
			return &cmdError{2, "BadValue", "generated collections filter on integer _id only"}
		}
		dir := int64(1)
		if len(sortSpec) > 0 {
			dir, _ = sortSpec[0].Int()
			if sortSpec[0].Name != "_id" {
				log.Printf("sort %v on generated collection ignored", sortSpec)
			}
		}
		c.gen, c.idOnly, c.desc = g, idOnly(projection), dir < 0
		if c.desc { // the cursor walks from end-1 down to next
			c.next, c.end = r.lo, max(r.hi-skip, r.lo)
			if limit > 0 {
				c.next = max(c.next, c.end-limit)
			}
		} else {
			c.next, c.end = min(r.lo+skip, r.hi), r.hi
			if limit > 0 {
				c.end = min(c.end, c.next+limit)
			}
		}
	} else {
		c.docs = s.matching(ns, filter, sortSpec, skip, limit)
	}
	if single && limit == 0 {
		limit = 1 << 62
	}
	return s.reply(c, "firstBatch", firstBatchSize(batchSize(cmd)), single, w)
}

func firstBatchSize(n int64) int64 {
	if n == 0 {
		return 101
	}
	return n
}

// reply writes one batch of c and registers it for getMore when it has more.
func (s *server) reply(c *cursor, field string, size int64, single bool, w *Builder) *cmdError {
	cur := w.SubDoc("cursor")
	idAt := len(w.B) + len("id") + 2
	w.Int64("id", 0)
	w.Str("ns", c.ns)
	arr := w.SubArray(field)
	start := len(w.B)
	var n int64
	for (size == 0 || n < size) && len(w.B)-start < maxBatchBytes {
		if c.gen != nil {
			if c.next >= c.end {
				break
			}
			id := c.next
			if c.desc {
				id = c.end - 1
				c.end--
			} else {
				c.next++
			}
			w.key(0x03, index(int(n)))
			if c.idOnly {
				w.B = AppendIDDoc(w.B, id)
			} else {
				w.B = c.gen.AppendDoc(w.B, id)
			}
		} else {
			if len(c.docs) == 0 {
				break
			}
			w.Raw(0x03, index(int(n)), c.docs[0])
			c.docs = c.docs[1:]
		}
		n++
	}
	w.End(arr)
	w.End(cur)
	more := (c.gen != nil && c.next < c.end) || (c.gen == nil && len(c.docs) > 0)
	if more && !single {
		id := s.nextID.Add(1)
		binary.LittleEndian.PutUint64(w.B[idAt:], uint64(id))
		s.mu.Lock()
		s.cursors[id] = c
		s.mu.Unlock()
	}
	w.Double("ok", 1)
	return nil
}

func (s *server) getMore(id int64, ns string, size int64, w *Builder) *cmdError {
	s.mu.Lock()
	c, ok := s.cursors[id]
	delete(s.cursors, id)
	s.mu.Unlock()
	if !ok {
		return &cmdError{43, "CursorNotFound", "cursor id not found"}
	}
	return s.reply(c, "nextBatch", size, false, w)
}

func (s *server) aggregate(db string, cmd Doc, w *Builder) *cmdError {
	ns := db + "." + cmd[0].Str()
	var pipeline Doc
	if e, ok := cmd.Get("pipeline"); ok {
		pipeline = e.Doc()
	}
	size := int64(101)
	if e, ok := cmd.Get("cursor"); ok {
		size = firstBatchSize(batchSize(e.Doc()))
	}
	c := &cursor{ns: ns}
	var filter Doc
	g := s.genFor(ns)
	for _, stage := range pipeline {
		st := stage.Doc()
		if len(st) == 0 {
			continue
		}
		switch st[0].Name {
		case "$match":
			filter = st[0].Doc()
		case "$group", "$count":
			var n int64
			if g != nil {
				r, _ := rangeOf(filter, g)
				n = r.hi - r.lo
			} else {
				n = int64(len(s.matching(ns, filter, nil, 0, 0)))
				if len(filter) == 0 {
					n = s.count(ns)
				}
			}
			if n > 0 {
				var b Builder
				at := b.Start()
				if st[0].Name == "$count" {
					b.Int64(st[0].Str(), n)
				} else {
					b.Int32("_id", 1)
					b.Int64("n", n)
				}
				b.End(at)
				c.docs = [][]byte{b.B}
			}
		case "$collStats":
			var b Builder
			at := b.Start()
			b.Str("ns", ns)
			b.Int64("count", s.count(ns))
			b.End(at)
			c.docs = [][]byte{b.B}
		case "$sample":
			if g == nil {
				return &cmdError{2, "BadValue", "$sample only on generated collections"}
			}
			sz, _ := st[0].Doc().Get("size")
			k, _ := sz.Int()
			state := uint64(0x2545F4914F6CDD1D)
			for i := int64(0); i < k && g.Count > 0; i++ {
				state ^= state << 13
				state ^= state >> 7
				state ^= state << 17
				c.docs = append(c.docs, AppendIDDoc(nil, int64(state%uint64(g.Count))))
			}
		case "$project", "$sort", "$limit", "$skip":
		default:
			log.Printf("unknown aggregation stage %s on %s", st[0].Name, ns)
			return &cmdError{40324, "Location40324", "unrecognized pipeline stage " + st[0].Name}
		}
	}
	return s.reply(c, "firstBatch", size, false, w)
}

// matching returns the kept documents of a stored collection that match filter, encoded.
func (s *server) matching(ns string, filter, sortSpec Doc, skip, limit int64) [][]byte {
	s.mu.Lock()
	st, ok := s.stored[ns]
	var docs []Doc
	if ok {
		for _, d := range st.docs {
			if matches(d, filter) {
				docs = append(docs, d)
			}
		}
	}
	s.mu.Unlock()
	if len(sortSpec) > 0 {
		key := sortSpec[0].Name
		dir, _ := sortSpec[0].Int()
		sort.SliceStable(docs, func(i, j int) bool {
			a, _ := lookup(docs[i], key)
			b, _ := lookup(docs[j], key)
			c, _ := compare(a, b)
			if dir < 0 {
				return c > 0
			}
			return c < 0
		})
	}
	if skip > int64(len(docs)) {
		skip = int64(len(docs))
	}
	docs = docs[skip:]
	if limit > 0 && limit < int64(len(docs)) {
		docs = docs[:limit]
	}
	out := make([][]byte, len(docs))
	for i, d := range docs {
		out[i] = encodeDoc(d)
	}
	return out
}

func lookup(d Doc, path string) (Elem, bool) {
	head, rest, dotted := strings.Cut(path, ".")
	e, ok := d.Get(head)
	if !ok || !dotted {
		return e, ok
	}
	return lookup(e.Doc(), rest)
}

func isNumber(t byte) bool { return t == 0x01 || t == 0x10 || t == 0x12 }

// compare orders two values of comparable types; ok is false when the types differ.
func compare(a, b Elem) (int, bool) {
	switch {
	case isNumber(a.Type) && isNumber(b.Type):
		x, _ := a.Float()
		y, _ := b.Float()
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	case a.Type != b.Type:
		return 0, false
	case a.Type == 0x02:
		return strings.Compare(a.Str(), b.Str()), true
	case a.Type == 0x09 || a.Type == 0x11:
		x := int64(binary.LittleEndian.Uint64(a.Raw))
		y := int64(binary.LittleEndian.Uint64(b.Raw))
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	}
	return bytes.Compare(a.Raw, b.Raw), true
}

func equal(a, b Elem) bool {
	c, ok := compare(a, b)
	return ok && c == 0
}

func matches(d Doc, filter Doc) bool {
	for _, f := range filter {
		switch f.Name {
		case "$and", "$or", "$nor":
			any := false
			all := true
			for _, sub := range f.Doc() {
				if matches(d, sub.Doc()) {
					any = true
				} else {
					all = false
				}
			}
			if (f.Name == "$and" && !all) || (f.Name == "$or" && !any) || (f.Name == "$nor" && any) {
				return false
			}
			continue
		}
		v, present := lookup(d, f.Name)
		ops := f.Doc()
		if f.Type != 0x03 || len(ops) == 0 || !strings.HasPrefix(ops[0].Name, "$") {
			if !present || !equal(v, f) {
				if !(f.Type == 0x0A && !present) {
					return false
				}
			}
			continue
		}
		for _, op := range ops {
			if !operator(op, v, present) {
				return false
			}
		}
	}
	return true
}

func operator(op Elem, v Elem, present bool) bool {
	c, ok := compare(v, op)
	switch op.Name {
	case "$eq":
		return present && ok && c == 0
	case "$ne":
		return !present || !ok || c != 0
	case "$lt":
		return present && ok && c < 0
	case "$lte":
		return present && ok && c <= 0
	case "$gt":
		return present && ok && c > 0
	case "$gte":
		return present && ok && c >= 0
	case "$exists":
		return present == op.Truthy()
	case "$in", "$nin":
		found := false
		for _, x := range op.Doc() {
			if present && equal(v, x) {
				found = true
			}
		}
		return found == (op.Name == "$in")
	}
	log.Printf("filter operator %s unsupported", op.Name)
	return false
}

func documentsOf(cmd Doc, req *request) [][]byte {
	if docs, ok := req.sequences["documents"]; ok {
		return docs
	}
	var out [][]byte
	if e, ok := cmd.Get("documents"); ok {
		for _, d := range e.Doc() {
			out = append(out, d.Raw)
		}
	}
	return out
}

func (s *server) insert(ns string, cmd Doc, req *request, w *Builder) *cmdError {
	docs := documentsOf(cmd, req)
	s.Inserted.Add(int64(len(docs)))
	s.mu.Lock()
	st := s.ensure(ns)
	var n int64
	var dupAt = -1
	for i, raw := range docs {
		if st.count < keepDocs {
			d, err := parseDoc(raw)
			if err != nil {
				s.mu.Unlock()
				return &cmdError{2, "BadValue", "bad document"}
			}
			if id, ok := d.Get("_id"); ok && s.hasID(st, id) {
				dupAt = i
				break
			}
			st.docs = append(st.docs, d)
		}
		st.count++
		n++
	}
	s.mu.Unlock()
	w.Int64("n", n)
	if dupAt >= 0 {
		arr := w.SubArray("writeErrors")
		e := w.SubDoc("0")
		w.Int32("index", int32(dupAt))
		w.Int32("code", 11000)
		w.Str("errmsg", "E11000 duplicate key error collection: "+ns+" index: _id_")
		w.End(e)
		w.End(arr)
	}
	w.Double("ok", 1)
	return nil
}

func (s *server) hasID(st *stored, id Elem) bool {
	for _, d := range st.docs {
		if v, ok := d.Get("_id"); ok && equal(v, id) {
			return true
		}
	}
	return false
}

var oids atomic.Uint32

func newObjectID() []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(time.Now().Unix()))
	b = append(b, 'w', 'i', 'r', 'e', 0)
	n := oids.Add(1)
	return append(b, byte(n>>16), byte(n>>8), byte(n))
}

// applyUpdate returns d changed by u (operators or a replacement), and whether it changed.
func applyUpdate(d Doc, u Doc, inserting bool) Doc {
	if len(u) == 0 || !strings.HasPrefix(u[0].Name, "$") {
		out := Doc{}
		if id, ok := d.Get("_id"); ok {
			out = append(out, id)
		}
		for _, e := range u {
			if e.Name != "_id" || len(out) == 0 {
				out = append(out, e)
			}
		}
		return out
	}
	out := append(Doc{}, d...)
	set := func(e Elem) {
		for i := range out {
			if out[i].Name == e.Name {
				out[i] = e
				return
			}
		}
		out = append(out, e)
	}
	for _, op := range u {
		for _, e := range op.Doc() {
			switch op.Name {
			case "$set":
				set(e)
			case "$setOnInsert":
				if inserting {
					set(e)
				}
			case "$unset":
				for i := range out {
					if out[i].Name == e.Name {
						out = append(out[:i], out[i+1:]...)
						break
					}
				}
			case "$inc":
				cur, ok := out.Get(e.Name)
				a, _ := cur.Float()
				b, _ := e.Float()
				var w Builder
				if ok && cur.Type == 0x01 || e.Type == 0x01 {
					w.Double(e.Name, a+b)
				} else {
					x, _ := cur.Int()
					y, _ := e.Int()
					w.Int64(e.Name, x+y)
				}
				set(Elem{w.B[0], e.Name, w.B[len(e.Name)+2:]})
			case "$max", "$min":
				cur, ok := out.Get(e.Name)
				c, cmp := compare(e, cur)
				if !ok || !cmp || (op.Name == "$max" && c > 0) || (op.Name == "$min" && c < 0) {
					set(e)
				}
			case "$currentDate":
				var w Builder
				w.Date(e.Name, time.Now().UnixMilli())
				set(Elem{0x09, e.Name, w.B[len(e.Name)+2:]})
			default:
				log.Printf("update operator %s unsupported", op.Name)
			}
		}
	}
	return out
}

// upserted builds the document an upsert inserts: the filter's equalities, then the update.
func upserted(q Doc, u Doc) Doc {
	base := Doc{}
	for _, e := range q {
		if !strings.HasPrefix(e.Name, "$") && !strings.Contains(e.Name, ".") {
			ops := e.Doc()
			if e.Type == 0x03 && len(ops) > 0 && strings.HasPrefix(ops[0].Name, "$") {
				continue
			}
			base = append(base, e)
		}
	}
	d := applyUpdate(base, u, true)
	if _, ok := d.Get("_id"); !ok {
		d = append(Doc{{0x07, "_id", newObjectID()}}, d...)
	}
	return d
}

// modify updates (or removes) the first or all kept documents matching q; it returns the old
// and new versions of the first one touched.
func (s *server) modify(ns string, q, u Doc, multi, upsert, remove bool, sortSpec Doc) (n int64, old, updated Doc, inserted Doc) {
	st := s.ensure(ns)
	idx := []int{}
	for i, d := range st.docs {
		if matches(d, q) {
			idx = append(idx, i)
		}
	}
	if len(sortSpec) > 0 && len(idx) > 1 {
		key := sortSpec[0].Name
		dir, _ := sortSpec[0].Int()
		sort.SliceStable(idx, func(i, j int) bool {
			a, _ := lookup(st.docs[idx[i]], key)
			b, _ := lookup(st.docs[idx[j]], key)
			c, _ := compare(a, b)
			return (dir < 0 && c > 0) || (dir >= 0 && c < 0)
		})
	}
	if !multi && len(idx) > 1 {
		idx = idx[:1]
	}
	if len(idx) == 0 {
		if upsert && !remove {
			inserted = upserted(q, u)
			st.docs = append(st.docs, inserted)
			st.count++
		}
		return 0, nil, nil, inserted
	}
	if remove {
		old = st.docs[idx[0]]
		sort.Sort(sort.Reverse(sort.IntSlice(idx)))
		for _, i := range idx {
			st.docs = append(st.docs[:i], st.docs[i+1:]...)
			st.count--
		}
		return int64(len(idx)), old, nil, nil
	}
	for k, i := range idx {
		nd := applyUpdate(st.docs[i], u, false)
		if k == 0 {
			old, updated = st.docs[i], nd
		}
		st.docs[i] = nd
	}
	return int64(len(idx)), old, updated, nil
}

func (s *server) update(ns string, cmd Doc, req *request, w *Builder) *cmdError {
	var ups []Doc
	if seq, ok := req.sequences["updates"]; ok {
		for _, raw := range seq {
			d, _ := parseDoc(raw)
			ups = append(ups, d)
		}
	} else if e, ok := cmd.Get("updates"); ok {
		for _, x := range e.Doc() {
			ups = append(ups, x.Doc())
		}
	}
	s.mu.Lock()
	var n, modified int64
	var ids []Elem
	var at []int
	for i, up := range ups {
		q, _ := up.Get("q")
		u, _ := up.Get("u")
		multi, _ := up.Get("multi")
		upsert, _ := up.Get("upsert")
		k, _, _, ins := s.modify(ns, q.Doc(), u.Doc(), multi.Truthy(), upsert.Truthy(), false, nil)
		n += k
		modified += k
		if ins != nil {
			n++
			id, _ := ins.Get("_id")
			ids = append(ids, id)
			at = append(at, i)
		}
	}
	s.mu.Unlock()
	w.Int64("n", n)
	w.Int64("nModified", modified)
	if len(ids) > 0 {
		arr := w.SubArray("upserted")
		for i, id := range ids {
			d := w.SubDoc(index(i))
			w.Int32("index", int32(at[i]))
			w.Raw(id.Type, "_id", id.Raw)
			w.End(d)
		}
		w.End(arr)
	}
	w.Double("ok", 1)
	return nil
}

func (s *server) delete(ns string, cmd Doc, req *request, w *Builder) *cmdError {
	var dels []Doc
	if seq, ok := req.sequences["deletes"]; ok {
		for _, raw := range seq {
			d, _ := parseDoc(raw)
			dels = append(dels, d)
		}
	} else if e, ok := cmd.Get("deletes"); ok {
		for _, x := range e.Doc() {
			dels = append(dels, x.Doc())
		}
	}
	s.mu.Lock()
	var n int64
	for _, del := range dels {
		q, _ := del.Get("q")
		limit, _ := del.Get("limit")
		l, _ := limit.Int()
		k, _, _, _ := s.modify(ns, q.Doc(), nil, l != 1, false, true, nil)
		n += k
	}
	s.mu.Unlock()
	w.Int64("n", n)
	w.Double("ok", 1)
	return nil
}

func (s *server) findAndModify(ns string, cmd Doc, w *Builder) *cmdError {
	get := func(name string) Elem { e, _ := cmd.Get(name); return e }
	s.mu.Lock()
	n, old, updated, ins := s.modify(ns, get("query").Doc(), get("update").Doc(), false,
		get("upsert").Truthy(), get("remove").Truthy(), get("sort").Doc())
	s.mu.Unlock()
	last := w.SubDoc("lastErrorObject")
	upserts := int64(0)
	if ins != nil {
		upserts = 1
	}
	w.Int64("n", n+upserts)
	w.Bool("updatedExisting", n > 0 && !get("remove").Truthy())
	if ins != nil {
		id, _ := ins.Get("_id")
		w.Raw(id.Type, "upserted", id.Raw)
	}
	w.End(last)
	value := old
	if get("new").Truthy() {
		value = updated
		if ins != nil {
			value = ins
		}
	}
	if value == nil {
		w.Null("value")
	} else {
		w.Raw(0x03, "value", encodeDoc(value))
	}
	w.Double("ok", 1)
	return nil
}
