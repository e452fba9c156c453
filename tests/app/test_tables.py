from engine.app.tables import markdown_table


def test_a_cell_cannot_break_its_table():
    table = markdown_table([{"reason": "ffmpeg said | x\nthen *stopped* at $a$ :fire:", "MB": 12.5},
                            {"reason": None, "MB": 3}])  # fmt: skip
    lines = table.splitlines()
    assert lines[:2] == ["| reason | MB |", "| --- | --- |"]
    assert lines[2] == "| ffmpeg said \\| x then \\*stopped\\* at \\$a\\$ \\:fire\\: | 12.5 |"
    assert lines[3] == "|  | 3 |" and len(lines) == 4


def test_no_rows_no_table():
    assert markdown_table([]) == ""
