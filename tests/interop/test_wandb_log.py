"""The .wandb framing reader against logs written by the installed wandb."""

from __future__ import annotations

from hrm_doctor.interop.wandb_log import decode_records, find_log_file, read_records


def test_every_cut_of_a_log_reads_a_prefix_of_its_records(wandb_run, tmp_path):
    """A writer killed at any byte: the reader returns complete records only, never raises."""
    data = find_log_file(wandb_run.resolve()).read_bytes()
    whole = read_records(find_log_file(wandb_run.resolve()))
    assert not whole.partial_tail and whole.end_offset == len(data)
    kinds = [k for k, _ in decode_records(whole.records)]
    assert kinds[0] == "header" and "run" in kinds and kinds.count("history") == 100
    cut = tmp_path / "cut.wandb"
    for n in range(7, len(data), max(1, len(data) // 97)):
        cut.write_bytes(data[:n])
        chunk = read_records(cut)
        assert chunk.records == whole.records[: len(chunk.records)]
        assert chunk.end_offset <= n
        # Resuming at the cursor on the full file reads exactly the rest.
        cut.write_bytes(data)
        rest = read_records(cut, chunk.end_offset)
        assert chunk.records + rest.records == whole.records


def test_small_reads_resume_at_the_cursor(wandb_run):
    path = find_log_file(wandb_run.resolve())
    whole = read_records(path).records
    got, offset = [], 0
    while True:
        chunk = read_records(path, offset, max_bytes=100_000)
        assert chunk.records or chunk.at_eof
        got += chunk.records
        offset = chunk.end_offset
        if chunk.at_eof:
            break
    assert got == whole
