rule forest:
    # Forest plot of one analysis, drawn from its analysis.json alone, in the layout
    # config report.forest_layout (default, compact, revman5 or jama).
    input:
        document="results/{analysis}/analysis.json",
    output:
        svg=report(
            "results/{analysis}/forest.svg",
            caption="../report/forest.rst",
            category="Forest plots",
            labels=analysis_labels,
        ),
        png="results/{analysis}/forest.png",
        pdf="results/{analysis}/forest.pdf",
    log:
        "logs/forest/{analysis}.log",
    conda:
        "../envs/metapool.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        code=metapool_code("report"),
        layout=config["report"].get("forest_layout", "default"),
    script:
        "../scripts/forest.py"


rule figures:
    # The secondary figures of one analysis, drawn from its analysis.json alone: funnel
    # plot, leave-one-out, cumulative and sensitivity plots (a placeholder figure saying
    # why when the analysis has too few studies for one), each as SVG, PNG and PDF.
    input:
        document="results/{analysis}/analysis.json",
    output:
        funnel=report(
            "results/{analysis}/funnel.svg",
            caption="../report/funnel.rst",
            category="Funnel plots",
            labels=analysis_labels,
        ),
        funnel_png="results/{analysis}/funnel.png",
        funnel_pdf="results/{analysis}/funnel.pdf",
        leave_one_out=report(
            "results/{analysis}/leave_one_out.svg",
            caption="../report/leave_one_out.rst",
            category="Leave-one-out plots",
            labels=analysis_labels,
        ),
        leave_one_out_png="results/{analysis}/leave_one_out.png",
        leave_one_out_pdf="results/{analysis}/leave_one_out.pdf",
        cumulative=report(
            "results/{analysis}/cumulative.svg",
            caption="../report/cumulative.rst",
            category="Cumulative plots",
            labels=analysis_labels,
        ),
        cumulative_png="results/{analysis}/cumulative.png",
        cumulative_pdf="results/{analysis}/cumulative.pdf",
        sensitivity=report(
            "results/{analysis}/sensitivity.svg",
            caption="../report/sensitivity.rst",
            category="Sensitivity plots",
            labels=analysis_labels,
        ),
        sensitivity_png="results/{analysis}/sensitivity.png",
        sensitivity_pdf="results/{analysis}/sensitivity.pdf",
    log:
        "logs/figures/{analysis}.log",
    conda:
        "../envs/metapool.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        code=metapool_code("report"),
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
            code=metapool_code("report"),
        script:
            "../scripts/prisma.py"
