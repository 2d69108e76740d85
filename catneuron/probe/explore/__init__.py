"""`catneuron explore RUN`: a local web page to browse every unit of a probed run.

    /                              the Table 1 analog per test set, training curves and filter galleries
                                   (when `catneuron visualize` drew them), and the table of units
    /?task=T&set=S&stage=&sublayer=&map=&i=&j=&sort=accuracy|auc&limit=
                                   the units of detector set S (trained-whole, random-whole,
                                   compare-control-whole, ...) on test set T, filtered and sorted:
                                   "most selective units for cat faces" is ?task=cat faces&sort=auc
    /unit/T/S/CANDIDATE            one unit (a stable URL): where it is, its accuracy and AUC on every
                                   test set in every network detector set (trained vs random weights,
                                   main vs compared runs, same candidate number), and pictures:
    /unit/T/S/CANDIDATE/P.png      P = histogram, top (its 16 strongest test images), corpus (its 16
                                   strongest of 2,000 training images), optimal (the optimal stimulus,
                                   plain), filter (its stage's W1 and W2 at its location), scale and
                                   translation (mean response to 10 positives moved on its input),
                                   concepts (its AUC for the 15 concepts, of 203, that drive it most) —
                                   computed when first asked for, then cached in RUN/probe/explore/,
                                   so the page itself answers at once.

The scores come from the probe's cache (RUN/probe/stages): every candidate's accuracy and AUC.
Served by Flask on 127.0.0.1 unless --host says otherwise.

    view.py    what the pages show, as data: RunView, the unit table's rows, the pictures' drawings
    pages.py   the HTML, from those rows
    app.py     the routes
"""
from catneuron.probe.explore.app import LOOPBACK_NAMES, create_app
from catneuron.probe.explore.view import PICTURES, RunView, UnitFilter

__all__ = ["LOOPBACK_NAMES", "PICTURES", "RunView", "UnitFilter", "create_app"]
