"""Solutions to the exercises of notebook 07 (checked by ``gcalib.notebook.exercises``; ``make test`` runs the checks)."""
import torch


def domain_plan_by_hand(domains, alpha, beta):
    """Exercise 1: T = [positive pair] + α·[same domain, not positive] + β·[other domain], two views."""
    sample = torch.arange(2 * len(domains)) % len(domains)
    same_sample = sample[:, None] == sample[None, :]
    same_domain = domains[sample][:, None] == domains[sample][None, :]
    plan = torch.where(same_sample, 1.0, torch.where(same_domain, alpha, beta))
    plan.fill_diagonal_(0.0)
    return plan


def hospital_plan(hospital, finding, weight):
    """Exercise 2: positives keep 1; other scans of the same hospital with the same finding get the weight."""
    sample = torch.arange(2 * len(hospital)) % len(hospital)
    same_sample = sample[:, None] == sample[None, :]
    same_hospital = hospital[sample][:, None] == hospital[sample][None, :]
    same_finding = finding[sample][:, None] == finding[sample][None, :]
    plan = torch.where(same_sample, 1.0, weight * (same_hospital & same_finding).float())
    plan.fill_diagonal_(0.0)
    return plan
