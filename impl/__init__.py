"""The reference implementation (X.509 CA, SQLite records, TSMs, GP-SE behind APDUs): not built yet."""
