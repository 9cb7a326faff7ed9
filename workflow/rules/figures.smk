# Plotting runs in batches too: each plots_batch_<i> job draws the forest plot and the
# figures of config report.figures for the analyses whose figures are not yet in the
# cache (see "result cache" in common.smk); `publish` (results.smk) copies them to
# results/<analysis>/.
for index, members in PLOT_BATCHES:

    rule:
        # Several analyses' figures in one process, each drawn from the analysis.json
        # of its pooling cache entry alone, in the layout config report.forest_layout.
        # A figure the analysis has too few studies for is a placeholder saying why.
        name:
            f"plots_batch_{index}"
        input:
            # each pooling entry's log, written last: the entry is complete (inputs
            # are checksummed once per output file: a small file keeps a batch's
            # bookkeeping cheap; entries are immutable, see common.smk)
            pooled=[pool_entry(name, "log") for name in members],
        output:
            [plot_entry(name, file) for name in members for file in PLOT_FILES],
        log:
            f"logs/plots_batch/{index}.log",
        conda:
            "../envs/metapool.yaml"
        resources:
            mem_mb=lambda wildcards, attempt: 1000 * attempt,
            runtime=lambda wildcards, attempt, n=len(members): (5 + n) * attempt,
        params:
            documents=[pool_entry(name, "analysis.json") for name in members],
            entries={
                name: f"results/.cache/plots/{PLOT_KEYS[name]}" for name in members
            },
            layout=config["report"]["forest_layout"],
            kinds=FIGURE_KINDS,
            formats=FIGURE_FORMATS,
        script:
            "../scripts/figures.py"


# The PRISMA diagram is drawn when there are counts to draw it from: the file named by
# the config key prisma, by default config/prisma.yaml (format described in that file).
# Without the file the rule does not exist, so nothing asks for results/prisma.*.
if os.path.exists(config.get("prisma", "config/prisma.yaml")):

    rule prisma:
        # PRISMA 2020 flow diagram from the counts file (config key prisma, default
        # config/prisma.yaml); the counts are checked first and every problem is logged.
        input:
            counts=config.get("prisma", "config/prisma.yaml"),
        output:
            svg=report(
                "results/prisma.svg",
                caption="../report/prisma.rst",
                category="PRISMA flow diagram",
                labels={"figure": "PRISMA 2020 flow diagram"},
            ),
            png="results/prisma.png",
            pdf="results/prisma.pdf",
        log:
            "logs/prisma.log",
        localrule: True
        conda:
            "../envs/metapool.yaml"
        params:
            code=PLOT_CODE,
        script:
            "../scripts/prisma.py"


# The risk-of-bias figures are drawn when the config names a risk-of-bias table
# (tables.risk_of_bias, optional); without it the rule does not exist, and nothing
# asks for results/risk_of_bias/*.
if rob_table():

    rule risk_of_bias:
        # Traffic-light plot (studies x domains, one panel per tool: RoB 2, ROBINS-I,
        # Newcastle-Ottawa) and summary plot (share of each judgement per domain, studies
        # weighted by their sample size, studies.csv n_total) of the judgements.
        input:
            tables=list(TABLE_FILES.values()),
        output:
            traffic_light=report(
                "results/risk_of_bias/traffic_light.svg",
                caption="../report/risk_of_bias_traffic_light.rst",
                category="Risk of bias",
                labels={"figure": "traffic-light plot"},
            ),
            traffic_light_png="results/risk_of_bias/traffic_light.png",
            traffic_light_pdf="results/risk_of_bias/traffic_light.pdf",
            summary=report(
                "results/risk_of_bias/summary.svg",
                caption="../report/risk_of_bias_summary.rst",
                category="Risk of bias",
                labels={"figure": "summary plot"},
            ),
            summary_png="results/risk_of_bias/summary.png",
            summary_pdf="results/risk_of_bias/summary.pdf",
        log:
            "logs/risk_of_bias.log",
        localrule: True
        conda:
            "../envs/metapool.yaml"
        params:
            tables=TABLE_FILES,
            km_dir=KM_DIR,
            code=PLOT_CODE,
        script:
            "../scripts/risk_of_bias.py"
