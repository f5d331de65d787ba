"""What an approval card and a tool result say: user values inside a line of text."""

import datetime as dt

from agent.tools import TOOLS, CreateTaskArgs, SendEmailArgs

RLO, FSI, PDI = "\u202e", "\u2068", "\u2069"


def test_a_value_with_a_right_to_left_override_is_isolated_so_the_rest_of_the_line_keeps_its_order():
    task = CreateTaskArgs(title=f"buy {RLO}klim", due=dt.date(2026, 12, 1))
    assert TOOLS["create_task"].describe(task) == f"Create the task “{FSI}buy {RLO}klim{PDI}”, due 2026-12-01"
    mail = SendEmailArgs(to="bob@example.com", subject=f"{RLO}hcnul", body="x")
    assert TOOLS["send_email"].describe(mail) == f"Send an e-mail to bob@example.com with the subject “{FSI}{RLO}hcnul{PDI}”"


def test_other_values_are_left_as_they_are():
    task = CreateTaskArgs(title="buy milk")
    assert TOOLS["create_task"].describe(task) == "Create the task “buy milk”"
