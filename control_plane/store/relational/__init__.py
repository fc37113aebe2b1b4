"""The store port in SQL, shared by both adapters: the store itself (`store`), the snapshot
reader and the sealed-row passes, over a `session.Session` each adapter provides."""
