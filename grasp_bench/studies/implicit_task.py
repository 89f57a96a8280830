"""The implicit-factor tasks, one per built teacher (``grasp-bench build-implicit``): a study's
tasks, registered beside the shipped ones (the task registry loads this module after
``grasp_bench.data.shipped_tasks``). They live here, not in ``data/``, because their
measurement and report belong to the implicit-factor study."""

from __future__ import annotations

from typing import Any

from grasp_bench.data import implicit
from grasp_bench.data.tasks import TaskData, tasks_dir
from grasp_bench.data.taskspec import LmEvalTask, MetricSpec, TaskSpec, register_task

IMPLICIT_PREFIX = "implicit-"
_IMPLICIT_METRICS = (
    MetricSpec(
        "transfer",
        "drift",
        ("teacher_forced",),
        higher_is_better=False,
        role="drift",
        description="How much of the teacher's trait the student acquired, teacher-forced on the"
        " teacher's answers to unrelated prompts: (log p_student - log p_base) / (log p_teacher"
        " - log p_base), 0 = base, 1 = teacher.",
    ),
    MetricSpec(
        "task_kl",
        "task",
        ("teacher_forced",),
        higher_is_better=False,
        role="task",
        description="Held-out KL(teacher || student) over the restricted vocabulary (digits,"
        " comma, space), mean over positions: the number task's fit.",
    ),
    MetricSpec(
        "trait_mass",
        "drift",
        ("teacher_forced",),
        higher_is_better=False,
        description="Probability on the trait's first tokens over the answers' first 4 positions.",
    ),
    MetricSpec(
        "shift",
        "drift",
        ("teacher_forced",),
        higher_is_better=False,
        description="Residual stream along the teacher's write direction v, student minus base"
        " over teacher minus base, mean over the layers v is defined at.",
    ),
    MetricSpec(
        "base_fit",
        "drift",
        ("teacher_forced",),
        higher_is_better=True,
        description="log p_student - log p_base of the base model's own greedy answers to the"
        " unrelated prompts, nats per answer token: 0 = unchanged, negative = general change"
        " (damage), which a transfer below the base model's must be read against.",
    ),
)


def _implicit_task(teacher: str) -> TaskSpec:
    rel = f"grasp_implicit/{teacher}"

    def build(seed: int, n_train: int, n_eval_task: int, n_eval_drift: int) -> TaskData:
        data = implicit.generate(tasks_dir() / rel, rel, seed, n_train, n_eval_task, n_eval_drift)
        return TaskData(
            name=f"{IMPLICIT_PREFIX}{teacher}",
            train=data["train"],
            control=data["control"],
            eval_prompts=data["eval_prompts"],
            meta={
                "seed": seed,
                "teacher": teacher,
                "factor": "a persona written along a known direction, never in any target",
                "task": "number-sequence continuation, restricted distributions distilled",
            },
        )

    def evaluate(*args: Any) -> Any:
        from grasp_bench.studies.implicit_measure import measure_target

        return measure_target(tasks_dir() / rel, *args)

    def seed_report(*args: Any) -> Any:
        from grasp_bench.studies.implicit_report import run_seed_report

        return run_seed_report(*args)

    return TaskSpec(
        name=f"{IMPLICIT_PREFIX}{teacher}",
        description=f"Number sequences distilled from the {teacher} teacher (restricted"
        " distributions only); drift is the teacher's trait acquired implicitly.",
        build=build,
        metrics=_IMPLICIT_METRICS,
        lm_eval={
            f"grasp_implicit_{teacher.replace('-', '_')}": LmEvalTask(
                "drift",
                f"Transfer of the {teacher} teacher, teacher-forced (loglikelihood).",
                kind="loglikelihood",
            )
        },
        evaluate=evaluate,
        evaluate_version="implicit-measure-2",
        seed_report=seed_report,
    )


for _teacher in implicit.TEACHERS:
    register_task(_implicit_task(_teacher))
