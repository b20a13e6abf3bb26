"""The sweep's saved views in MLflow's own UI, as the experiment tags the UI reads.

MLflow restores a view kept in the experiment tag ``mlflow.sharedViewState.<key>`` (an envelope
with the UI state as a JSON string) when the runs page is opened with ``?viewStateShareKey=<key>``
(``sweep.store.ui_urls`` builds those links). Both views filter the runs to the sweep's trials and
sort them by the first target's cost: any sort other than start time lists the trials as flat
rows (by start time MLflow folds child runs under their parent, and charts only the rows shown).
The chart view shows every trial (``runsHiddenMode``; MLflow's default charts the first 10 rows),
one scatter of cost against retrained accuracy per target and one of the Pareto-optimal trials
(``pareto_accuracy/<target>``, logged on those only).
"""

from __future__ import annotations

import json
import time
from typing import Any

from trainers.records import ACCURACY, COST_FRACTION_OF, COST_OF, PARETO_ACCURACY_OF

from .store import TAG_PARETO, TRIALS_FILTER, VIEW_KEY, ui_urls

CHART_QUERY = f"viewStateShareKey={VIEW_KEY}&compareRunsMode=CHART"
_SECTION = "morphsweep-pareto"


def _charts(targets: list[str]) -> list[dict[str, Any]]:
    charts: list[dict[str, Any]] = []
    for target in targets:
        # MLflow titles a scatter "<x> vs. <y>"
        for y in (ACCURACY, PARETO_ACCURACY_OF.format(target=target)):
            charts.append(
                {
                    "uuid": f"morphsweep-{target}-{y.split('/')[0]}",
                    "type": "SCATTER",
                    "xaxis": {"key": COST_OF.format(target=target), "type": "METRIC"},
                    "yaxis": {"key": y, "type": "METRIC"},
                    "runsCountToCompare": 1000,
                    "metricSectionId": _SECTION,
                    "deleted": False,
                    "isGenerated": False,
                }
            )
    # MLflow adds a generated chart for every metric no card claims; deleted cards claim the
    # ones the scatters show, so they are not charted a second time elsewhere
    shown = [ACCURACY] + [
        key.format(target=t)
        for t in targets
        for key in (COST_OF, COST_FRACTION_OF, PARETO_ACCURACY_OF)
    ]
    return charts + [
        {
            "uuid": f"morphsweep-claim-{key}",
            "type": "BAR",
            "metricKey": key,
            "metricSectionId": _SECTION,
            "deleted": True,
            "isGenerated": True,
        }
        for key in shown
    ]


def saved_views(sweep: str, targets: list[str]) -> dict[str, str]:
    """The experiment tags of the chart view and the table view, by tag key."""
    order = {"orderByKey": f"metrics.`{COST_OF.format(target=targets[0])}`", "orderByAsc": True}
    chart = {
        "searchFilter": TRIALS_FILTER,
        **order,
        "runsHiddenMode": "SHOW_ALL",
        # the charts get the page's width; the run list opens with one click (the table view
        # lists the trials)
        "runListHidden": True,
        "hideEmptyCharts": False,
        "isAccordionReordered": True,
        "compareRunCharts": _charts(targets),
        "compareRunSections": [
            {
                "uuid": _SECTION,
                "name": "morphsweep: cost vs accuracy",
                "display": True,
                "isReordered": True,
                "deleted": False,
                "isGenerated": False,
            }
        ],
    }
    # the runs table, with the columns a user compares trials by
    columns = ["params.`algorithm`", "params.`strength`", "params.`width`", f"metrics.`{ACCURACY}`"]
    for target in targets:
        columns += [
            f"metrics.`{COST_OF.format(target=target)}`",
            f"metrics.`{COST_FRACTION_OF.format(target=target)}`",
        ]
    columns.append(f"tags.`{TAG_PARETO}`")
    table = {
        "searchFilter": TRIALS_FILTER,
        **order,
        "runsHiddenMode": "SHOW_ALL",
        "selectedColumns": columns,
    }
    now = int(time.time() * 1000)

    def envelope(name: str, state: dict[str, Any]) -> str:
        return json.dumps(
            {"name": name, "createdAt": now, "updatedAt": now, "state": json.dumps(state)}
        )

    return {
        f"mlflow.sharedViewState.{VIEW_KEY}": envelope(f"{sweep}: trials, cost vs accuracy", chart),
        f"mlflow.sharedViewState.{VIEW_KEY}-table": envelope(
            f"{sweep}: trials, cost and accuracy", table
        ),
    }


def parent_note(sweep: str, experiment_id: str) -> dict[str, str]:
    """The parent run's description in the MLflow UI: links to both views (relative)."""
    links = ui_urls("", experiment_id)
    return {
        "mlflow.note.content": (
            f"morphsweep sweep **{sweep}**: "
            f"[the trials as a table, sorted by cost]({links['table']}) · "
            f"[cost against accuracy, charted]({links['chart']}) · "
            f"the Pareto figures are in the artifacts, under `pareto/`"
        )
    }
