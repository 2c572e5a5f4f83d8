"""The reference implementation's parts: JPKI CA (ca), SCP03 (scp03), GP-SE with the JPKI applet (se), records (records)."""
