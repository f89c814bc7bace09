module spindlebench/goref

go 1.22
