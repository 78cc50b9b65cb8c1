module monarch.test/wire

go 1.22
