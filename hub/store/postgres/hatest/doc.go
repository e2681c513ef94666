// Package hatest holds the tests of the hub's data store on a highly
// available PostgreSQL: a Patroni cluster over etcd with HAProxy and
// PgBouncer in front (internal/testenv.StartPGHA), its primary killed or
// switched over while the store, a hub and a real redforge-edge write.
// It has no code of its own; its tests run in parallel with the other
// packages'.
package hatest
